"""Reconciliation: every source row is accounted for in the warehouse, and the money adds up.

Per table: rows in the source, live rows in raw, rows staged and rows quarantined (raw must equal
staged + quarantined, and source must equal raw). For money, the source's sum against the marts'
sum plus what sits in quarantine.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import psycopg
from psycopg import sql

from haven.warehouse.connection import connect
from haven.warehouse.endpoints import Endpoints
from ingestion.app.settings import DELETED_AT, TABLES

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


def _scalar(conn: psycopg.Connection, query: sql.Composable) -> object:
    row = conn.execute(query).fetchone()
    return row[0] if row else None


def reconcile_endpoints(endpoints: Endpoints, source_schema: str) -> list[Reconciliation]:
    """``reconcile`` over fresh connections to the source (read-only role) and the warehouse."""
    with (
        connect(endpoints.source_url, purpose="source database") as source,
        connect(endpoints.warehouse_url, purpose="warehouse") as warehouse,
    ):
        return reconcile(source, warehouse, source_schema)


def reconcile(
    source: psycopg.Connection, warehouse: psycopg.Connection, source_schema: str
) -> list[Reconciliation]:
    """Compare counts (and amounts) for every application table."""
    results = []
    for spec in TABLES:
        table = sql.Identifier(spec.name)
        live = (
            sql.SQL(" where {} is null").format(sql.Identifier(DELETED_AT))
            if spec.mutable
            else sql.SQL("")
        )
        source_rows = int(
            _scalar(
                source,
                sql.SQL("select count(*) from {}.{}").format(sql.Identifier(source_schema), table),
            )
        )  # type: ignore[arg-type]
        raw_rows = int(
            _scalar(warehouse, sql.SQL("select count(*) from raw_app.{}{}").format(table, live))
        )  # type: ignore[arg-type]
        staged_rows = int(
            _scalar(
                warehouse,
                sql.SQL("select count(*) from staging.{}").format(
                    sql.Identifier(f"stg_app__{spec.name}")
                ),
            )
        )  # type: ignore[arg-type]
        quarantined = warehouse.execute(
            "select count(*) from quarantine.quarantined_rows where source_table = %s", (spec.name,)
        ).fetchone()
        money = MONEY.get(spec.name)
        amounts: dict[str, object] = {}
        if money:
            source_column, mart, mart_column = money
            amounts = {
                "money_column": source_column,
                "source_amount": Decimal(
                    _scalar(
                        source,
                        sql.SQL("select coalesce(sum({}), 0) from {}.{}").format(
                            sql.Identifier(source_column), sql.Identifier(source_schema), table
                        ),
                    )  # type: ignore[arg-type]
                ),
                "mart_amount": Decimal(
                    _scalar(
                        warehouse,
                        sql.SQL("select coalesce(sum({}), 0) from {}").format(
                            sql.Identifier(mart_column), sql.SQL(mart)
                        ),
                    )
                ),  # type: ignore[arg-type]
                "quarantined_amount": Decimal(
                    _scalar(
                        warehouse,
                        sql.SQL(
                            "select coalesce(sum((row_data ->> {})::numeric), 0) from quarantine.quarantined_rows"
                            " where source_table = {}"
                        ).format(sql.Literal(mart_column), sql.Literal(spec.name)),
                    )  # type: ignore[arg-type]
                ),
            }
        results.append(
            Reconciliation(
                spec.name,
                source_rows,
                raw_rows,
                staged_rows,
                int(quarantined[0]) if quarantined else 0,
                **amounts,  # type: ignore[arg-type]
            )
        )
    return results
