"""Reconciliation: every source row is accounted for in the warehouse, and the money adds up.

Per table: rows in the source, live rows in raw, rows staged and rows quarantined (raw must equal
staged + quarantined, and source must equal raw). For money, the source's sum against the marts'
sum plus what sits in quarantine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg

from haven.warehouse import spark
from haven.warehouse.connection import connect
from haven.warehouse.endpoints import Endpoints
from ingestion.app.settings import DELETED_AT, TABLES, TableSpec

MONEY = {
    "orders": ("total_cents", "analytics.fct_orders", "total_cents"),
    "payments": ("amount_cents", "analytics.fct_payments", "amount_cents"),
}
"""Source table -> (source column, mart, mart column) reconciled as amounts."""


@dataclass(frozen=True)
class Reconciliation:
    table_name: str
    source_rows: int
    raw_rows: int
    staged_rows: int
    quarantined_rows: int
    money_column: str | None = None
    source_amount: Decimal | None = None
    mart_amount: Decimal | None = None
    quarantined_amount: Decimal | None = None

    @property
    def row_difference(self) -> int:
        """Rows unaccounted for: source vs raw, plus raw vs staged + quarantined."""
        return abs(self.source_rows - self.raw_rows) + abs(
            self.raw_rows - self.staged_rows - self.quarantined_rows
        )

    @property
    def amount_difference(self) -> Decimal | None:
        if self.source_amount is None or self.mart_amount is None:
            return None
        return self.source_amount - self.mart_amount - (self.quarantined_amount or Decimal(0))

    @property
    def balanced(self) -> bool:
        return self.row_difference == 0 and not self.amount_difference


Row = Callable[[str], tuple]
"""Runs one query and returns its first row."""


def _postgres_row(conn: psycopg.Connection) -> Row:
    def row(query: str) -> tuple:
        return tuple(conn.execute(query).fetchone() or ())  # type: ignore[arg-type]

    return row


def _spark_row(conn: Any) -> Row:
    cursor = conn.cursor()

    def row(query: str) -> tuple:
        cursor.execute(query)
        return tuple(cursor.fetchone() or ())

    return row


def _values(run: Row, queries: list[str]) -> list[object]:
    """The single value of each query, read in one statement: one round trip (on Spark one
    statement to plan and poll, not forty) and, on PostgreSQL, one snapshot of every table."""
    return list(run("select " + ", ".join(f"({query})" for query in queries)))


JSON_NUMBER = {
    "postgres": "(row_data ->> '{key}')::numeric",
    "spark": "cast(get_json_object(row_data, '$.{key}') as decimal(38, 0))",
}
"""A number inside the quarantined row's JSON, per engine."""


def reconcile_endpoints(
    endpoints: Endpoints, source_schema: str, spark_endpoint: spark.SparkEndpoint | None = None
) -> list[Reconciliation]:
    """``reconcile`` over fresh connections to the source (read-only role) and the warehouse
    that was built: PostgreSQL's, or with ``spark_endpoint`` the Spark cluster's tables."""
    with connect(endpoints.source_url, purpose="source database") as source:
        if spark_endpoint is not None:
            with closing(spark.connect(spark_endpoint)) as lake:
                return reconcile(_postgres_row(source), _spark_row(lake), source_schema, "spark")
        with connect(endpoints.warehouse_url, purpose="warehouse") as warehouse:
            return reconcile(
                _postgres_row(source), _postgres_row(warehouse), source_schema, "postgres"
            )


def reconcile(
    source: Row, warehouse: Row, source_schema: str, engine: str = "postgres"
) -> list[Reconciliation]:
    """Compare counts (and amounts) for every application table, each side's figures read in
    one statement. The names are the project's own (TABLES, MONEY), never user input, so the
    queries are plain text for either engine."""
    source_queries: list[str] = []
    warehouse_queries: list[str] = []
    for spec in TABLES:
        quarantined = f"from quarantine.quarantined_rows where source_table = '{spec.name}'"
        source_queries.append(f"select count(*) from {source_schema}.{spec.name}")
        warehouse_queries += [
            f"select count(*) from raw_app.{spec.name}{_live(spec)}",
            f"select count(*) from staging.stg_app__{spec.name}",
            f"select count(*) {quarantined}",
        ]
        if money := MONEY.get(spec.name):
            source_column, mart, mart_column = money
            in_json = JSON_NUMBER[engine].format(key=mart_column)
            source_queries.append(
                f"select coalesce(sum({source_column}), 0) from {source_schema}.{spec.name}"
            )
            warehouse_queries += [
                f"select coalesce(sum({mart_column}), 0) from {mart}",
                f"select coalesce(sum({in_json}), 0) {quarantined}",
            ]
    source_values = iter(_values(source, source_queries))
    warehouse_values = iter(_values(warehouse, warehouse_queries))

    def count(values: Iterator[object]) -> int:
        return int(next(values))  # type: ignore[call-overload]

    def amount(values: Iterator[object]) -> Decimal:
        return Decimal(str(next(values)))

    results = []
    for spec in TABLES:
        source_rows = count(source_values)
        raw, staged, quarantined_rows = (count(warehouse_values) for _ in range(3))
        amounts: dict[str, object] = {}
        if money := MONEY.get(spec.name):
            amounts = {
                "money_column": money[0],
                "source_amount": amount(source_values),
                "mart_amount": amount(warehouse_values),
                "quarantined_amount": amount(warehouse_values),
            }
        results.append(
            Reconciliation(
                spec.name,
                source_rows,
                raw,
                staged,
                quarantined_rows,
                **amounts,  # type: ignore[arg-type]
            )
        )
    return results


def _live(spec: TableSpec) -> str:
    """The where clause of a raw table's live rows (an append-only table has no deletions)."""
    return f" where {DELETED_AT} is null" if spec.mutable else ""


STAGED_TEST = "assert_raw_equals_staged_plus_quarantined"
"""The dbt test that raw's live rows equal the staged plus the quarantined rows, per table."""


def explain_staged_difference(endpoints: Endpoints) -> str:
    """What ``STAGED_TEST`` found, and what to run, as the end of one sentence: per table, how
    many rows staging plus quarantine hold more or fewer than raw's live rows."""
    with connect(endpoints.warehouse_url, purpose="warehouse") as warehouse:
        differences = _values(
            _postgres_row(warehouse),
            [
                f"select (select count(*) from staging.stg_app__{spec.name})"
                " + (select count(*) from quarantine.quarantined_rows"
                f" where source_table = '{spec.name}')"
                f" - (select count(*) from raw_app.{spec.name}{_live(spec)})"
                for spec in TABLES
            ],
        )
        found = []
        for spec, value in zip(TABLES, differences, strict=True):
            difference = int(value)  # type: ignore[call-overload]
            if difference:
                found.append(
                    f"{spec.name}: {abs(difference):,} {'more' if difference > 0 else 'fewer'}"
                )
    what = ", ".join(found) or "no difference now: the build that failed was interrupted"
    return (
        f"staging plus quarantine disagree with raw_app's live rows ({what}); run"
        " `haven run --full-refresh` to rebuild the models from raw_app"
    )
