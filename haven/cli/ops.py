"""Looking at what ran: `haven status`, `report`, `docs` and the MCP server, `haven mcp`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from haven.cli.base import app, check_port_free, console
from haven.errors import HavenError
from haven.settings import get_settings
from haven.warehouse import endpoints as warehouse
from haven.warehouse.connection import connect
from haven.warehouse.readiness import warehouse_warnings


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
    runs: Annotated[int, typer.Option(help="How many recent runs to show.")] = 10,
) -> None:
    """Recent runs, freshness, failing tests, quarantine counts, reconciliation differences and
    each table's last value check."""
    if runs < 1:  # before the imports: Prefect and dlt take seconds to import
        raise HavenError(f"--runs must be at least 1, got {runs}.")
    from flows.server import local_server, ui_url
    from haven.ops.status import collect
    from haven.warehouse.endpoints import TRANSFORMER

    settings = get_settings()
    endpoints = warehouse.up(settings)
    with connect(endpoints.role_url(TRANSFORMER), purpose="warehouse") as conn:
        data = collect(conn, runs=runs)
        data["warnings"] = warehouse_warnings(conn)
    prefect = settings.prefect_api_url or local_server(settings).status().url
    data["prefect"] = {
        "ui_url": ui_url(prefect) if prefect else None,
        "configured": bool(settings.prefect_api_url),
    }
    from haven.warehouse import spark

    cluster = spark.current(settings)
    data["spark"] = (
        {"thrift": f"{cluster.host}:{cluster.port}", "local": cluster.local} if cluster else None
    )
    if as_json:
        print(json.dumps(data, default=str))
        return
    out = Console()
    out.print(
        f"prefect: {ui_url(prefect)}" if prefect else "prefect: not running (`haven up` starts it)",
        highlight=False,
    )
    if cluster is not None:
        out.print(f"spark: thrift://{cluster.host}:{cluster.port}", highlight=False)
    for title, headers, rows in _status_sections(data):
        if not rows:
            out.print(f"{title}: none")
            continue
        table = Table(title=title, title_justify="left", expand=False, pad_edge=False)
        for header, justify in headers:
            table.add_column(header, justify=justify, overflow="fold")  # type: ignore[arg-type]
        for row in rows:
            table.add_row(*row)
        out.print(table)
    for warning in data["warnings"]:
        out.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    out.print("all columns: haven status --json", highlight=False)


def _status_sections(
    data: dict[str, list[dict[str, object]]],
) -> list[tuple[str, list[tuple[str, str]], list[list[str]]]]:
    """What ``haven status`` prints: few, short columns, so each table fits 80 columns."""
    from haven.transform.dbt import node_name

    def text(value: object, template: str = "{}") -> str:
        return "" if value is None else template.format(value)

    left, right = "left", "right"
    return [
        (
            # each run's cost is in --json and the report; the monthly estimate is the one to watch
            "recent runs (times in UTC)",
            [
                ("started", left),
                ("engine", left),
                ("status", left),
                ("secs", right),
                ("rows", right),
                ("tests ok/fail", right),
                ("month $", right),
            ],
            [
                [
                    f"{run['started_at']:%m-%d %H:%M}",  # type: ignore[str-format]
                    str(run["engine"]),
                    str(run["status"]),
                    text(run["wall_seconds"]),
                    text(run["rows_loaded"], "{:,}"),
                    f"{text(run['tests_passed'])}/{text(run['tests_failed'])}",
                    text(run["monthly_estimate_usd"], "{:.2f}"),
                ]
                for run in data["runs"]
            ],
        ),
        (
            "source freshness (latest run)",
            [("table", left), ("lag min", right), ("status", left)],
            [
                [
                    str(row["source_table"]).removeprefix("source.clutter_haven."),
                    text(row["lag_minutes"]),
                    str(row["status"]),
                ]
                for row in data["freshness"]
            ],
        ),
        (
            "failing tests (latest run)",
            [("test", left), ("status", left), ("message", left)],
            [
                [node_name(str(row["unique_id"])), str(row["status"]), text(row["message"])]
                for row in data["failing_tests"]
            ],
        ),
        (
            "quarantine",
            [("table", left), ("rows", right)],
            [[str(row["source_table"]), f"{row['rows']:,}"] for row in data["quarantine"]],
        ),
        (
            "reconciliation differences (latest run)",
            [
                ("table", left),
                ("source", right),
                ("raw", right),
                ("staged", right),
                ("quar.", right),
                ("Δ rows", right),
                ("Δ amount", right),
            ],
            [
                [
                    str(row["table_name"]),
                    *(
                        text(row[column])
                        for column in (
                            "source_rows",
                            "raw_rows",
                            "staged_rows",
                            "quarantined_rows",
                            "row_difference",
                            "amount_difference",
                        )
                    ),
                ]
                for row in data["reconciliation_differences"]
            ],
        ),
        (
            "values, source against raw (last check of each table, UTC)",
            [
                ("table", left),
                ("checked", left),
                ("scope", left),
                ("rows", right),
                ("differ", right),
                ("repaired", right),
                ("keys", left),
            ],
            [
                [
                    str(row["table_name"]),
                    f"{row['checked_at']:%m-%d %H:%M}",  # type: ignore[str-format]
                    str(row["scope"]),
                    f"{row['rows_compared']:,}",
                    f"{row['rows_differing']:,}",
                    f"{row['rows_repaired']:,}",
                    ", ".join(row["sample_keys"][:3]),  # type: ignore[index]
                ]
                for row in data["value_checks"]
            ],
        ),
    ]


@app.command()
def report() -> None:
    """Write the self-contained HTML report of the ops history and print its path."""
    from haven.ops import report as html_report
    from haven.warehouse.endpoints import TRANSFORMER

    settings = get_settings()
    endpoints = warehouse.up(settings)
    with connect(endpoints.role_url(TRANSFORMER), purpose="warehouse") as conn:
        from haven.ops.history import ensure_schema

        ensure_schema(conn)
        path = html_report.write(conn, settings.report_path, budget_usd=settings.monthly_budget_usd)
    print(path)


@app.command()
def docs(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 picks a free one).")] = 8580,
    serve: Annotated[bool, typer.Option(help="Serve the site after generating it.")] = True,
) -> None:
    """Generate the dbt docs site and serve it on localhost."""
    from haven.ops.docs import generate, serve_directory

    if serve and port != 0:
        check_port_free(port, option="--port")
    settings = get_settings()
    generate(settings, warehouse.up(settings))
    if serve:
        serve_directory(
            settings.dbt_target_dir,
            port,
            announce=lambda url: console.print(f"dbt docs: {url} (Ctrl-C stops)"),
        )


@app.command()
def mcp(
    http: Annotated[
        int | None,
        typer.Option("--http", help="Serve streamable HTTP on 127.0.0.1:PORT instead of stdio."),
    ] = None,
) -> None:
    """The MCP server: an AI assistant's read-only window into analytics, ml and ops."""
    if http is not None:  # before the imports, which take seconds
        check_port_free(http, option="--http")
    from haven.mcp_server.server import build_server
    from haven.mcp_server.tools import Connections
    from haven.warehouse.endpoints import MCP, TRANSFORMER

    settings = get_settings()

    def locate() -> tuple[str, str | None]:
        endpoints = warehouse.up(settings)
        return endpoints.role_url(MCP), endpoints.role_url(TRANSFORMER)

    try:
        connections = Connections(*locate())
    except HavenError as error:  # start anyway: the client sees the sentence on every call
        console.print(
            f"[yellow]warning:[/] {error} The MCP server starts anyway and answers every tool "
            "call with this until the warehouse is back.",
            highlight=False,
            soft_wrap=True,
        )
        connections = Connections(locate=locate)
    server = build_server(connections)
    if http is None:
        server.run("stdio")
    else:
        console.print(f"MCP server on http://127.0.0.1:{http}/mcp", highlight=False)
        server.run("streamable-http", host="127.0.0.1", port=http)
