"""The MCP server driven by the official SDK client over stdio and streamable HTTP: every tool's
happy path, analytical SQL accepted, and a suite of escape attempts refused or stopped with
nothing changed."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from haven.ops import history
from haven.ops.reconcile import reconcile_endpoints
from haven.settings import PROJECT_DIR, Settings
from haven.source import simulator
from haven.transform.dbt import dbt_args, dbt_environment, read_run_results, run_dbt
from haven.warehouse.connection import connect
from haven.warehouse.embedded import free_port
from haven.warehouse.endpoints import TRANSFORMER, Endpoints, up
from ingestion.pipeline import ingest
from tests.python.conftest import HAVEN, settings_for


@pytest.fixture(scope="module")
def warehouse(haven_home: Path) -> tuple[Settings, Endpoints, dict[str, str]]:
    settings = settings_for(haven_home, "mcp")
    endpoints = up(settings)
    simulator.init(endpoints, scale=0.02, seed=8, replace=True)
    report = ingest(settings, endpoints, full_refresh=True, values="all")
    assert run_dbt(dbt_args("build"), dbt_environment(settings, endpoints)).success
    run = history.RunRecord(
        started_at=datetime.now(UTC), status="completed", ingest=report, wall_seconds=1.0
    )
    run.dbt_results["build"] = read_run_results(settings.dbt_target_dir)
    run.reconciliation = reconcile_endpoints(endpoints, "public")
    with connect(endpoints.role_url(TRANSFORMER), purpose="warehouse") as conn:
        history.record(conn, run)
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith("HAVEN_")},
        "HAVEN_HOME": str(haven_home),
        "HAVEN_WAREHOUSE_DATABASE": settings.warehouse_database,
        "HAVEN_SOURCE_DATABASE": settings.source_database,
    }
    return settings, endpoints, environment


async def run_session(
    server: Any, steps: list[tuple[str, dict[str, Any]]]
) -> list[tuple[bool, Any]]:
    answers = []
    async with Client(server, read_timeout_seconds=60) as client:
        for tool, arguments in steps:
            result = await client.call_tool(tool, arguments)
            if result.is_error:
                answers.append((True, result.content[0].text))  # type: ignore[union-attr]
            else:
                content = result.structured_content or {}
                answers.append((False, content.get("result", content)))
    return answers


def stdio(environment: dict[str, str]) -> StdioServerParameters:
    return StdioServerParameters(command=HAVEN, args=["mcp"], env=environment, cwd=str(PROJECT_DIR))


HAPPY_PATH: list[tuple[str, dict[str, Any]]] = [
    ("list_schemas", {}),
    ("list_relations", {"schema": "analytics"}),
    ("describe_relation", {"schema": "analytics", "name": "fct_orders"}),
    (
        "query",
        {
            "sql": "select order_status, count(*) as orders from analytics.fct_orders group by 1 order by 1"
        },
    ),
    (
        "query",
        {"sql": "select order_id from analytics.fct_orders order by order_id", "max_rows": 5},
    ),
    (
        "explain",
        {"sql": "select * from analytics.fct_orders where customer_id = 7", "analyze": True},
    ),
    (
        "advise_indexes",
        {
            "sql": "select * from analytics.fct_orders where currency_code = 'SEK' and shipped_at > now() - interval '30 days'"
        },
    ),
    ("lineage", {"model": "fct_orders"}),
    ("test_results", {"model": "stg_app__orders"}),
    ("source_freshness", {}),
    ("recent_runs", {"limit": 5}),
    ("reconciliation", {}),
]


def test_every_tool_over_stdio(warehouse) -> None:
    _, _, environment = warehouse
    answers = asyncio.run(run_session(stdio(environment), HAPPY_PATH))
    assert not any(error for error, _ in answers), [a for a in answers if a[0]]
    by_step = dict(
        zip(
            (f"{tool}:{index}" for index, (tool, _) in enumerate(HAPPY_PATH)),
            (a for _, a in answers),
            strict=True,
        )
    )
    assert {row["schema"] for row in by_step["list_schemas:0"]} == {"analytics", "ml", "ops"}
    assert any(
        row["name"] == "fct_orders" and row["description"] for row in by_step["list_relations:1"]
    )
    described = by_step["describe_relation:2"]
    assert described["indexes"] and any(
        c["name"] == "order_id" and c["description"] for c in described["columns"]
    )
    assert "unique_fct_orders_order_id" in described["tests"]
    orders = sum(row[1] for row in by_step["query:3"]["rows"])
    assert described["row_estimate"] == orders, "the build analysed what it changed"
    listed = {row["name"]: row for row in by_step["list_relations:1"]}
    assert listed["fct_orders"]["row_estimate"] == orders
    assert listed["dim_customers_history"]["row_estimate"] is None, "a view has no estimate"
    assert by_step["query:3"]["rows"] and by_step["query:3"]["truncated"] is None
    assert by_step["query:4"]["row_count"] == 5 and "row cap" in by_step["query:4"]["truncated"]
    assert (
        by_step["explain:5"]["costliest_nodes"]
        and "actual_rows" in by_step["explain:5"]["costliest_nodes"][0]
    )
    advice = by_step["advise_indexes:6"][0]
    assert advice["proposals"] and advice["proposals"][0]["cost_after"] < advice["cost"]
    assert any("stg_app__orders" in node for node in by_step["lineage:7"]["upstream"])
    assert any("agg_daily_sales" in node for node in by_step["lineage:7"]["downstream"])
    assert by_step["test_results:8"]["tests"] > 0
    assert by_step["recent_runs:10"][0]["status"] == "completed"
    assert {row["table_name"] for row in by_step["reconciliation:11"]} >= {"orders", "customers"}
    values = {row["table_name"]: row["values"] for row in by_step["reconciliation:11"]}
    assert values["orders"]["scope"] == "all" and values["orders"]["rows_compared"] > 0
    assert values["orders"]["rows_differing"] == 0


ANALYTICAL = [
    "with monthly as (select date_trunc('month', placed_at) as month, sum(net_revenue_cents) as revenue"
    " from analytics.fct_orders group by 1) select month, revenue, revenue - lag(revenue) over (order by month) as change"
    " from monthly order by month",
    "select vendor_id, percentile_cont(0.5) within group (order by gross_sales_cents) as median_sales"
    " from analytics.agg_daily_sales group by vendor_id order by 2 desc limit 5",
    "select count(*) filter (where is_refunded) as refunded, count(*) as orders from analytics.fct_orders",
    "select c.customer_id, last_order.placed_at from analytics.dim_customers as c cross join lateral"
    " (select placed_at from analytics.fct_orders as o where o.customer_id = c.customer_id order by placed_at desc limit 1)"
    " as last_order limit 10",
    "select * from ml.customer_features where customer_id = 1 order by as_of_date",
]

ESCAPES = [
    "select 1; drop table analytics.fct_orders",
    "with gone as (delete from analytics.fct_orders returning *) select count(*) from gone",
    "update analytics.fct_orders set total_cents = 0",
    "set statement_timeout = 0",
    "select set_config('statement_timeout', '0', false)",
    "copy analytics.fct_orders to '/tmp/haven-escape.csv'",
    "do $$ begin execute 'drop table analytics.fct_orders'; end $$",
    "select * from analytics.fct_orders for update",
    "select pg_advisory_lock(42)",
    "select pg_read_file('/etc/passwd')",
    "select lo_import('/etc/passwd')",
    "select * into analytics.stolen from analytics.fct_orders",
    "select pg_sleep(60)",
    "select * from raw_app.customers",
    "select * from staging.stg_app__customers",
    "select query_to_xml('delete from analytics.fct_orders', true, true, '')",
    "begin; delete from analytics.fct_orders; commit",
    # runaway: a triple cross join that would run for hours, stopped by the role's statement_timeout
    "select count(*) from analytics.fct_orders as a cross join analytics.fct_orders as b cross join analytics.fct_orders as c",
    # runaway that spills: stopped by the role's temp_file_limit
    "select count(*) from generate_series(1, 100000000000) as g",
]


def test_analytical_sql_is_accepted_and_escapes_are_refused_over_http(warehouse) -> None:
    _, endpoints, environment = warehouse
    with psycopg.connect(endpoints.warehouse_url) as conn:
        orders_before = conn.execute(
            "select count(*), sum(total_cents) from analytics.fct_orders"
        ).fetchone()
        indexes_before = conn.execute(
            "select count(*) from pg_indexes where schemaname in ('analytics', 'ml')"
        ).fetchone()
    port = free_port()
    server = subprocess.Popen(
        [HAVEN, "mcp", "--http", str(port)],
        env=environment,
        cwd=PROJECT_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(port)
        steps = [("query", {"sql": sql}) for sql in ANALYTICAL + ESCAPES]
        steps.append(("explain", {"sql": "delete from analytics.fct_orders", "analyze": True}))
        steps.append(
            (
                "advise_indexes",
                {"sql": "select * from staging.stg_app__orders where customer_id = 1"},
            )
        )
        answers = asyncio.run(run_session(f"http://127.0.0.1:{port}/mcp", steps))
    finally:
        server.terminate()
        server.wait(timeout=20)
    accepted, refused = answers[: len(ANALYTICAL)], answers[len(ANALYTICAL) :]
    assert all(not error and answer["rows"] for error, answer in accepted), accepted
    for (error, message), sql in zip(
        refused, [*ESCAPES, "explain delete", "advise on staging"], strict=True
    ):
        assert error, f"not refused: {sql}"
        assert (
            "Traceback" not in message
            and "postgresql://" not in message
            and "password" not in message.lower()
        )
    assert "time limit" in refused[len(ESCAPES) - 2][1], (
        "stopped by the server-side statement timeout"
    )
    assert "temp_file_limit" in refused[len(ESCAPES) - 1][1], (
        "stopped by the server-side temp file limit"
    )
    with psycopg.connect(endpoints.warehouse_url) as conn:
        assert (
            conn.execute("select count(*), sum(total_cents) from analytics.fct_orders").fetchone()
            == orders_before
        )
        assert (
            conn.execute(
                "select count(*) from pg_indexes where schemaname in ('analytics', 'ml')"
            ).fetchone()
            == indexes_before
        )
        assert conn.execute("select to_regclass('analytics.stolen')").fetchone() == (None,)
        assert conn.execute(
            "select count(*) from pg_locks where locktype = 'advisory' and objid = 42"
        ).fetchone() == (0,), "no lock leaked into another session"
    assert not Path("/tmp/haven-escape.csv").exists()


def test_caps_can_be_lowered_not_raised(warehouse) -> None:
    _, _, environment = warehouse
    answers = asyncio.run(
        run_session(
            stdio(environment),
            [
                (
                    "query",
                    {"sql": "select g from generate_series(1, 5000) as g", "max_rows": 100000},
                ),
                (
                    "query",
                    {
                        "sql": "select repeat('x', 1000) from generate_series(1, 400)",
                        "max_bytes": 10000000,
                    },
                ),
                (
                    "query",
                    {
                        "sql": "select repeat('x', 1000) from generate_series(1, 400)",
                        "max_bytes": 4096,
                    },
                ),
            ],
        )
    )
    (e1, rows_capped), (e2, bytes_capped), (e3, lowered) = answers
    assert not (e1 or e2 or e3)
    assert rows_capped["row_count"] == 500 and "row cap" in rows_capped["truncated"]
    assert bytes_capped["row_count"] < 400 and "byte cap" in bytes_capped["truncated"]
    assert lowered["row_count"] < 5 and "4,096-byte cap" in lowered["truncated"]


def _wait_for(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"the MCP server did not listen on {port}")


def test_mcp_starts_with_the_warehouse_down_and_each_call_says_why(haven_home: Path) -> None:
    """An MCP client only shows what the server answers: with the warehouse unreachable the
    server still starts, and every tool call answers with the sentence."""
    from tests.python.conftest import haven_environment

    environment = haven_environment(
        {"HAVEN_WAREHOUSE_URL": "postgresql://haven@127.0.0.1:1/nowhere"}, haven_home
    )
    answers = asyncio.run(
        run_session(stdio(environment), [("list_schemas", {}), ("recent_runs", {})])
    )
    assert all(error for error, _ in answers), answers
    assert all("Cannot connect to the warehouse" in text for _, text in answers), answers
