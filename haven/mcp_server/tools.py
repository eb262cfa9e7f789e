"""The MCP server's tools as plain functions over the warehouse: browse, query, explain, index
advice, dbt lineage and tests, freshness and run history. Each call opens its own connection as
``haven_mcp`` and closes it, so nothing (settings, locks, temp tables) outlives the call."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from haven.errors import HavenError
from haven.mcp_server import manifest as dbt_manifest
from haven.mcp_server.safety import CheckedSql, check, refuse_volatile
from haven.ops.status import latest_value_checks

MAX_ROWS = 500
MAX_BYTES = 256 * 1024
VISIBLE_SCHEMAS = ("analytics", "ml", "ops")


class Connections:
    """Where the tools connect. ``reader_url`` (haven_mcp) runs everything the tools run;
    ``advisor_url`` is a role that may create indexes on the marts, used only inside rolled-back
    transactions to price candidate indexes (it never runs text from the client except EXPLAIN of
    a checked query). Given ``locate`` instead, the URLs are found on first use and again after a
    failure, so a server started while the warehouse is down answers every tool call with the
    sentence saying why, and works once the warehouse is back."""

    def __init__(
        self,
        reader_url: str | None = None,
        advisor_url: str | None = None,
        *,
        locate: Callable[[], tuple[str, str | None]] | None = None,
    ) -> None:
        if reader_url is None and locate is None:
            raise ValueError("Connections needs reader_url or locate")
        self._urls = (reader_url, advisor_url) if reader_url is not None else None
        self._locate = locate

    def _resolved(self) -> tuple[str, str | None]:
        if self._urls is None:
            assert self._locate is not None
            self._urls = self._locate()  # a HavenError here is the tool's answer
        return self._urls  # type: ignore[return-value]

    @property
    def reader_url(self) -> str:
        return self._resolved()[0]

    @property
    def advisor_url(self) -> str | None:
        return self._resolved()[1]


@contextmanager
def _session(url: str, *, read_only: bool = True) -> Iterator[psycopg.Connection]:
    try:
        conn = psycopg.connect(url, connect_timeout=10, row_factory=dict_row)  # type: ignore[arg-type]
    except psycopg.OperationalError:
        raise HavenError(
            "The warehouse is not reachable right now; try again in a moment."
        ) from None
    try:
        conn.read_only = read_only
        yield conn
    except psycopg.errors.QueryCanceled:
        raise HavenError(
            "The query ran past the server's time limit and was stopped; narrow it down."
        ) from None
    except psycopg.errors.InsufficientPrivilege as error:
        raise HavenError(
            f"Not allowed: {_first_line(error)}; this server reads analytics, ml and ops only."
        ) from None
    except psycopg.Error as error:
        raise HavenError(f"The warehouse refused the query: {_first_line(error)}.") from None
    finally:
        conn.rollback()
        conn.close()


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0].rstrip(".") if lines else type(error).__name__


def _vet(conn: psycopg.Connection, text: str) -> CheckedSql:
    checked = check(text)
    if checked.functions:
        rows = conn.execute(
            "select distinct proname from pg_proc where proname = any(%s) and provolatile = 'v'",
            (sorted(checked.functions),),
        ).fetchall()
        refuse_volatile(checked, {row["proname"] for row in rows})
    return checked


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value) if value % 1 else int(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


# -- browse ----------------------------------------------------------------------------------------


def list_schemas(connections: Connections) -> list[dict[str, Any]]:
    with _session(connections.reader_url) as conn:
        return conn.execute(
            "select n.nspname as schema, count(c.oid) as relations from pg_namespace n"
            " left join pg_class c on c.relnamespace = n.oid and c.relkind in ('r', 'v', 'm', 'p')"
            " where has_schema_privilege(n.oid, 'usage') and n.nspname = any(%s)"
            " group by n.nspname order by n.nspname",
            (list(VISIBLE_SCHEMAS),),
        ).fetchall()


ROW_ESTIMATE = (
    "case when c.relkind = 'v' then null"
    " when c.reltuples < 0 or c.relpages = 0 then greatest(c.reltuples, 0)::bigint"
    " else round(c.reltuples / c.relpages"
    " * (pg_relation_size(c.oid) / current_setting('block_size')::bigint))::bigint end"
)
"""Rows as the planner estimates them: the density ANALYZE measured times the table's pages now,
so a table that grew since it was analysed is not under-counted; None for a view."""


def list_relations(connections: Connections, schema: str) -> list[dict[str, Any]]:
    _visible(schema)
    manifest = _maybe_manifest()
    with _session(connections.reader_url) as conn:
        rows = conn.execute(
            "select c.relname as name, case c.relkind when 'v' then 'view' when 'm' then 'materialized view'"
            f" else 'table' end as kind, {ROW_ESTIMATE} as row_estimate"
            " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = %s and c.relkind in ('r', 'v', 'm', 'p') order by c.relname",
            (schema,),
        ).fetchall()
    for row in rows:
        node = manifest.by_relation(schema, row["name"]) if manifest else None
        row["description"] = (node or {}).get("description", "")
    return rows


def describe_relation(connections: Connections, schema: str, name: str) -> dict[str, Any]:
    _visible(schema)
    manifest = _maybe_manifest()
    with _session(connections.reader_url) as conn:
        columns = conn.execute(
            "select column_name as name, data_type as type, is_nullable = 'YES' as nullable"
            " from information_schema.columns where table_schema = %s and table_name = %s order by ordinal_position",
            (schema, name),
        ).fetchall()
        if not columns:
            raise HavenError(f"There is no relation {schema}.{name} that this server can read.")
        estimate = conn.execute(
            f"select {ROW_ESTIMATE} as rows from pg_class c where c.oid = %s::regclass",
            (f"{schema}.{name}",),
        ).fetchone()
        indexes = conn.execute(
            "select indexname as name, indexdef as definition from pg_indexes"
            " where schemaname = %s and tablename = %s order by indexname",
            (schema, name),
        ).fetchall()
    node = manifest.by_relation(schema, name) if manifest else None
    if node:
        docs = node.get("columns", {})
        for column in columns:
            column["description"] = docs.get(column["name"], {}).get("description", "")
    unique_id = (node or {}).get("unique_id")
    return {
        "relation": f"{schema}.{name}",
        "description": (node or {}).get("description", ""),
        "row_estimate": estimate["rows"] if estimate else None,
        "columns": columns,
        "indexes": indexes,
        "tests": manifest.tests_of(unique_id) if manifest and unique_id else [],
    }


def _visible(schema: str) -> None:
    if schema not in VISIBLE_SCHEMAS:
        raise HavenError(
            f"Schema {schema!r} is not available here; this server reads {', '.join(VISIBLE_SCHEMAS)}."
        )


def _maybe_manifest() -> dbt_manifest.Manifest | None:
    try:
        return dbt_manifest.load()
    except HavenError:
        return None


# -- query and explain -------------------------------------------------------------------------


def query(
    connections: Connections, text: str, max_rows: int = MAX_ROWS, max_bytes: int = MAX_BYTES
) -> dict[str, Any]:
    """Run one checked read-only statement; caps can be lowered by the client, never raised."""
    row_cap = max(1, min(int(max_rows), MAX_ROWS))
    byte_cap = max(1024, min(int(max_bytes), MAX_BYTES))
    started = time.perf_counter()
    with _session(connections.reader_url) as conn:
        checked = _vet(conn, text)
        cursor = conn.execute(checked.sql, prepare=True)  # a prepared statement cannot hold two
        columns = [column.name for column in cursor.description or []]
        fetched = cursor.fetchmany(row_cap + 1)
    rows, size, truncated = [], 2, None
    for row in fetched[:row_cap]:
        values = [_jsonable(row[column]) for column in columns]
        size += len(json.dumps(values)) + 1
        if size > byte_cap:
            truncated = f"stopped at {len(rows)} rows: the result passed the {byte_cap:,}-byte cap"
            break
        rows.append(values)
    if truncated is None and len(fetched) > row_cap:
        truncated = f"stopped at {row_cap} rows: the row cap"
    return {
        "columns": columns,
        "rows": rows,
        "row_count": len(rows),
        "truncated": truncated,
        "milliseconds": round((time.perf_counter() - started) * 1000, 1),
    }


def _plan(
    conn: psycopg.Connection, checked: CheckedSql, *, analyze: bool = False, generic: bool = False
) -> dict[str, Any]:
    options = (
        ["format json"]
        + (["analyze", "buffers"] if analyze else [])
        + (["generic_plan"] if generic else [])
    )
    row = conn.execute(
        f"explain ({', '.join(options)}) {checked.sql}", prepare=not generic
    ).fetchone()  # noqa: S608 - checked above
    assert row is not None
    return next(iter(row.values()))[0]


def explain(connections: Connections, text: str, analyze: bool = False) -> dict[str, Any]:
    """The plan, summarised: total cost, the costliest nodes, sequential scans on large tables and,
    with ``analyze``, estimated against actual rows. ``analyze`` executes the (checked) query."""
    with _session(connections.reader_url) as conn:
        checked = _vet(conn, text)
        plan = _plan(conn, checked, analyze=analyze)
    return summarize_plan(plan)


def summarize_plan(plan: dict[str, Any]) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = []

    def walk(node: dict[str, Any], depth: int) -> None:
        children = node.get("Plans", [])
        own_cost = node["Total Cost"] - sum(child["Total Cost"] for child in children)
        entry = {
            "node": node["Node Type"],
            "relation": ".".join(filter(None, [node.get("Schema"), node.get("Relation Name")]))
            or None,
            "index": node.get("Index Name"),
            "depth": depth,
            "total_cost": node["Total Cost"],
            "own_cost": round(own_cost, 2),
            "estimated_rows": node["Plan Rows"],
        }
        if "Actual Rows" in node:
            entry["actual_rows"] = node["Actual Rows"] * node.get("Actual Loops", 1)
            estimate = max(node["Plan Rows"] * node.get("Actual Loops", 1), 1)
            entry["misestimate"] = round(max(entry["actual_rows"], 1) / estimate, 2)
        nodes.append(entry)
        for child in children:
            walk(child, depth + 1)

    walk(plan["Plan"], 0)
    return {
        "total_cost": plan["Plan"]["Total Cost"],
        "execution_ms": plan.get("Execution Time"),
        "costliest_nodes": sorted(nodes, key=lambda n: n["own_cost"], reverse=True)[:5],
        "sequential_scans_on_large_tables": [
            n for n in nodes if n["node"] == "Seq Scan" and n["estimated_rows"] >= 10_000
        ],
        "misestimates": [
            n for n in nodes if "misestimate" in n and not 0.1 <= n["misestimate"] <= 10
        ],
        "node_count": len(nodes),
    }


# -- index advice -------------------------------------------------------------------------------


def advise_indexes(
    connections: Connections, text: str | None = None, top: int = 3
) -> list[dict[str, Any]]:
    """Propose indexes for a query, or for the costliest analytics queries in pg_stat_statements,
    and price each one: the planner's cost before and with it, created inside a transaction that
    is rolled back, so nothing is left behind."""
    if connections.advisor_url is None:
        raise HavenError("Index advice is not configured on this server.")
    if text is not None:
        queries = [text]
    else:
        with _session(connections.reader_url) as conn:
            rows = conn.execute(
                "select query from pg_stat_statements where query ~* '^\\s*(with|select)\\b'"
                " and query ~* '\\m(analytics|ml)\\.' and query !~* 'pg_stat_statements'"
                " order by total_exec_time desc limit %s",
                (max(1, min(top, 10)),),
            ).fetchall()
        queries = [row["query"] for row in rows]
    return [_advise_one(connections, query_text) for query_text in queries]


def _advise_one(connections: Connections, text: str) -> dict[str, Any]:
    with _session(connections.reader_url) as conn:
        checked = _vet(conn, text)
        # the reader must be able to plan it: this is where a query on staging or raw is refused
        before = _plan(conn, checked, generic=True)["Plan"]["Total Cost"]
    candidates = _candidates(connections, checked)
    proposals = []
    for schema, table, columns in candidates:
        with _session(connections.advisor_url or "", read_only=False) as conn:
            conn.execute("set local statement_timeout = '60s'")
            conn.execute(
                sql.SQL("create index on {}.{} ({})").format(
                    sql.Identifier(schema),
                    sql.Identifier(table),
                    sql.SQL(", ").join(map(sql.Identifier, columns)),
                )
            )
            after = _plan(conn, checked, generic=True)["Plan"]["Total Cost"]
            # _session rolls back: the index never existed for anyone else
        proposals.append(
            {
                "index": f"create index on {schema}.{table} ({', '.join(columns)})",
                "cost_before": before,
                "cost_after": after,
                "improvement": round(1 - after / before, 4) if before else 0.0,
            }
        )
    proposals.sort(key=lambda p: p["cost_after"])
    return {
        "query": checked.sql,
        "cost": before,
        "proposals": [p for p in proposals if p["cost_after"] < before],
    }  # type: ignore[return-value]


def _candidates(connections: Connections, checked: CheckedSql) -> list[tuple[str, str, list[str]]]:
    """Columns of the query's tables that appear in its text, not yet leading an index: filter,
    join and sort columns are what an index can serve."""
    tables = [
        (schema or "analytics", name)
        for schema, name in checked.relations
        if (schema or "analytics") in VISIBLE_SCHEMAS[:2]
    ]
    lowered = checked.sql.lower()
    found = []
    with _session(connections.reader_url) as conn:
        for schema, table in tables:
            columns = conn.execute(
                "select column_name from information_schema.columns where table_schema = %s and table_name = %s",
                (schema, table),
            ).fetchall()
            leading = {
                row["leading"]
                for row in conn.execute(
                    "select a.attname as leading from pg_index i join pg_attribute a"
                    " on a.attrelid = i.indrelid and a.attnum = i.indkey[0]"
                    " where i.indrelid = %s::regclass",
                    (f"{schema}.{table}",),
                ).fetchall()
            }
            for row in columns:
                name = row["column_name"]
                if name not in leading and _mentioned(lowered, name):
                    found.append((schema, table, [name]))
    return found[:8]


def _mentioned(text: str, column: str) -> bool:
    return re.search(rf"(where|and|or|on|by|join)[^;]*\b{re.escape(column)}\b", text) is not None


# -- dbt and operations ---------------------------------------------------------------------------


def lineage(model: str) -> dict[str, Any]:
    manifest = dbt_manifest.load()
    unique_id = manifest.find(model)
    return {
        "model": unique_id,
        "upstream": manifest.walk(unique_id, manifest.parents),
        "downstream": manifest.walk(unique_id, manifest.children),
        "tests": manifest.tests_of(unique_id),
    }


def _latest_run(conn: psycopg.Connection) -> str | None:
    row = conn.execute(
        "select run_id::text as run_id from ops.runs order by started_at desc limit 1"
    ).fetchone()
    return row["run_id"] if row else None


def test_results(connections: Connections, model: str | None = None) -> dict[str, Any]:
    names: set[str] | None = None
    if model:
        manifest = dbt_manifest.load()
        names = set(manifest.tests_of(manifest.find(model)))
    with _session(connections.reader_url) as conn:
        run_id = _latest_run(conn)
        rows = conn.execute(
            "select unique_id, status, round(seconds::numeric, 3) as seconds, message from ops.dbt_results"
            " where run_id = %s and resource_type in ('test', 'unit_test') order by status, unique_id",
            (run_id,),
        ).fetchall()
    if names is not None:
        rows = [row for row in rows if row["unique_id"].split(".")[2] in names]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
        row["seconds"] = _jsonable(row["seconds"])
    return {
        "run_id": run_id,
        "counts": counts,
        "failing": [r for r in rows if r["status"] not in {"pass", "success"}],
        "tests": len(rows),
    }


def _latest_run_rows(connections: Connections, query_text: str) -> list[dict[str, Any]]:
    """Rows of an ops table for the latest run (``%(run_id)s`` in the query), JSON-ready."""
    with _session(connections.reader_url) as conn:
        rows = conn.execute(query_text, {"run_id": _latest_run(conn)}).fetchall()  # type: ignore[arg-type]
    return [{key: _jsonable(value) for key, value in row.items()} for row in rows]


def source_freshness(connections: Connections) -> list[dict[str, Any]]:
    return _latest_run_rows(
        connections,
        "select source_table, max_loaded_at::text, round(lag_seconds::numeric / 60, 1) as lag_minutes, status"
        " from ops.source_freshness where run_id = %(run_id)s order by source_table",
    )


def reconciliation(connections: Connections) -> list[dict[str, Any]]:
    """Per table: source, raw, staged and quarantined rows, and money differences (latest run),
    and the table's last value check (source against raw over every column)."""
    counts = {
        row["table_name"]: row
        for row in _latest_run_rows(
            connections,
            "select table_name, source_rows, raw_rows, staged_rows, quarantined_rows,"
            " row_difference, amount_difference from ops.reconciliation"
            " where run_id = %(run_id)s order by table_name",
        )
    }
    with _session(connections.reader_url) as conn:
        values = latest_value_checks(conn)
    for value_check in values:
        row = counts.setdefault(
            value_check["table_name"], {"table_name": value_check["table_name"]}
        )
        row["values"] = {
            key: _jsonable(value) for key, value in value_check.items() if key != "table_name"
        }
    return [counts[name] for name in sorted(counts)]


def recent_runs(connections: Connections, limit: int = 10) -> list[dict[str, Any]]:
    with _session(connections.reader_url) as conn:
        rows = conn.execute(
            "select run_id::text, started_at::text, status, round(wall_seconds::numeric, 1) as wall_seconds,"
            " rows_loaded, tests_passed, tests_failed, error from ops.runs order by started_at desc limit %s",
            (max(1, min(limit, 100)),),
        ).fetchall()
    return [{key: _jsonable(value) for key, value in row.items()} for row in rows]
