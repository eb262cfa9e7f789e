"""The MCP server: the tools of ``tools.py`` on the official SDK's ``MCPServer``, over stdio or
streamable HTTP on 127.0.0.1. Every error reaches the client as one sentence (no stack trace,
no connection string)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from haven.errors import HavenError
from haven.mcp_server import tools
from haven.mcp_server.tools import Connections

INSTRUCTIONS = (
    "Clutter Haven analytics warehouse (PostgreSQL). Schemas: analytics (Kimball marts: dim_*, fct_*, agg_*), "
    "ml (point-in-time features), ops (pipeline run history). Browse with list_schemas / list_relations / "
    "describe_relation; run read-only SQL with query (one SELECT, schema-qualified names); explain and "
    "advise_indexes for performance; lineage, test_results, source_freshness, recent_runs, reconciliation "
    "for dbt and operations."
)


def _one_sentence(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except HavenError as error:
            raise ToolError(str(error)) from None
        except Exception as error:  # noqa: BLE001 - nothing internal reaches the client
            raise ToolError(
                f"The tool failed ({type(error).__name__}); the server log has the details."
            ) from None

    return wrapper


def build_server(connections: Connections) -> MCPServer:
    server = MCPServer(name="clutter-haven", instructions=INSTRUCTIONS, log_level="WARNING")

    def tool(function: Callable[..., Any]) -> None:
        server.tool(name=function.__name__, description=function.__doc__)(_one_sentence(function))

    def list_schemas() -> list[dict[str, Any]]:
        """Schemas this server can read, with their number of relations."""
        return tools.list_schemas(connections)

    def list_relations(schema: str) -> list[dict[str, Any]]:
        """Tables and views of a schema with kind, row estimate and dbt description."""
        return tools.list_relations(connections, schema)

    def describe_relation(schema: str, name: str) -> dict[str, Any]:
        """Columns (type, nullability, dbt column docs), row estimate, indexes and dbt tests of a relation."""
        return tools.describe_relation(connections, schema, name)

    def query(
        sql: str, max_rows: int = tools.MAX_ROWS, max_bytes: int = tools.MAX_BYTES
    ) -> dict[str, Any]:
        """Run ONE read-only SELECT (CTEs, window functions, FILTER, LATERAL welcome). Results are capped at
        max_rows (at most 500) and max_bytes (at most 256 KiB); the answer says when it was truncated."""
        return tools.query(connections, sql, max_rows, max_bytes)

    def explain(sql: str, analyze: bool = False) -> dict[str, Any]:
        """The plan of a SELECT, summarised: costliest nodes, sequential scans on large tables and (with
        analyze, which runs the query) estimated against actual rows."""
        return tools.explain(connections, sql, analyze)

    def advise_indexes(sql: str | None = None, top: int = 3) -> list[dict[str, Any]]:
        """Index proposals for a SELECT (or the costliest analytics queries seen by pg_stat_statements),
        each priced by the planner before and after, inside a rolled-back transaction."""
        return tools.advise_indexes(connections, sql, top)

    def lineage(model: str) -> dict[str, Any]:
        """Upstream and downstream dbt nodes of a model, snapshot, seed or source, and its tests."""
        return tools.lineage(model)

    def test_results(model: str | None = None) -> dict[str, Any]:
        """Latest dbt test results (all, or those of one model): counts by status and the failing tests."""
        return tools.test_results(connections, model)

    def source_freshness() -> list[dict[str, Any]]:
        """Freshness of every source table at the latest run."""
        return tools.source_freshness(connections)

    def recent_runs(limit: int = 10) -> list[dict[str, Any]]:
        """The latest pipeline runs: status, duration, rows loaded, tests."""
        return tools.recent_runs(connections, limit)

    def reconciliation() -> list[dict[str, Any]]:
        """Per table at the latest run: source, raw, staged and quarantined rows, and money
        differences; and each table's last value check (rows compared, differing, repaired)."""
        return tools.reconciliation(connections)

    for function in (
        list_schemas,
        list_relations,
        describe_relation,
        query,
        explain,
        advise_indexes,
        lineage,
        test_results,
        source_freshness,
        recent_runs,
        reconciliation,
    ):
        tool(function)
    return server
