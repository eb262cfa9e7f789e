"""Reconciliation: every source row is accounted for in the warehouse, and the money adds up.

Per table: rows in the source, live rows in raw, rows staged and rows quarantined (raw must equal
staged + quarantined, and source must equal raw). For money, the source's sum against the marts'
sum plus what sits in quarantine.
"""

from __future__ import annotations

from collections.abc import Callable
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


Scalar = Callable[[str], object]
"""Runs one query and returns the first column of its first row."""


def _postgres_scalar(conn: psycopg.Connection) -> Scalar:
    def scalar(query: str) -> object:
        row = conn.execute(query).fetchone()  # type: ignore[arg-type]
        return row[0] if row else None

    return scalar


def _spark_scalar(conn: Any) -> Scalar:
    cursor = conn.cursor()

    def scalar(query: str) -> object:
        cursor.execute(query)
        row = cursor.fetchone()
        return row[0] if row else None

    return scalar


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
                return reconcile(
                    _postgres_scalar(source), _spark_scalar(lake), source_schema, "spark"
                )
        with connect(endpoints.warehouse_url, purpose="warehouse") as warehouse:
            return reconcile(
                _postgres_scalar(source), _postgres_scalar(warehouse), source_schema, "postgres"
            )


def reconcile(
    source: Scalar, warehouse: Scalar, source_schema: str, engine: str = "postgres"
) -> list[Reconciliation]:
    """Compare counts (and amounts) for every application table. The names are the project's
    own (TABLES, MONEY), never user input, so the queries are plain text for either engine."""
    results = []
    for spec in TABLES:
        live = _live(spec)
        amounts: dict[str, object] = {}
        money = MONEY.get(spec.name)
        if money:
            source_column, mart, mart_column = money
            in_json = JSON_NUMBER[engine].format(key=mart_column)
            amounts = {
                "money_column": source_column,
                "source_amount": Decimal(
                    str(
                        source(
                            f"select coalesce(sum({source_column}), 0) from {source_schema}.{spec.name}"
                        )
                    )
                ),
                "mart_amount": Decimal(
                    str(warehouse(f"select coalesce(sum({mart_column}), 0) from {mart}"))
                ),
                "quarantined_amount": Decimal(
                    str(
                        warehouse(
                            f"select coalesce(sum({in_json}), 0) from quarantine.quarantined_rows"
                            f" where source_table = '{spec.name}'"
                        )
                    )
                ),
            }
        results.append(
            Reconciliation(
                spec.name,
                int(source(f"select count(*) from {source_schema}.{spec.name}")),  # type: ignore[call-overload]
                int(warehouse(f"select count(*) from raw_app.{spec.name}{live}")),  # type: ignore[call-overload]
                int(warehouse(f"select count(*) from staging.stg_app__{spec.name}")),  # type: ignore[call-overload]
                int(
                    warehouse(  # type: ignore[call-overload]
                        "select count(*) from quarantine.quarantined_rows"
                        f" where source_table = '{spec.name}'"
                    )
                ),
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
        scalar = _postgres_scalar(warehouse)
        found = []
        for spec in TABLES:
            live = _live(spec)
            difference = int(
                scalar(  # type: ignore[call-overload]
                    f"select (select count(*) from staging.stg_app__{spec.name})"
                    " + (select count(*) from quarantine.quarantined_rows"
                    f" where source_table = '{spec.name}')"
                    f" - (select count(*) from raw_app.{spec.name}{live})"
                )
            )
            if difference:
                found.append(
                    f"{spec.name}: {abs(difference):,} {'more' if difference > 0 else 'fewer'}"
                )
    what = ", ".join(found) or "no difference now: the build that failed was interrupted"
    return (
        f"staging plus quarantine disagree with raw_app's live rows ({what}); run"
        " `haven run --full-refresh` to rebuild the models from raw_app"
    )
