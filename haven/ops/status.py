"""``haven status``: the last runs, freshness, failing tests, quarantine and reconciliation (counts
and values), read from the warehouse (ops and quarantine schemas) as one plain dictionary
(``--json`` prints it)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row


def latest_value_checks(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """The last value reconciliation of each table, whichever run made it (a run that failed before
    its check leaves the previous one standing); none before any run recorded one."""
    with conn.cursor(row_factory=dict_row) as cursor:
        present = cursor.execute(
            "select to_regclass('ops.value_checks') is not null as present"
        ).fetchone()
        if not present or not present["present"]:
            return []
        return cursor.execute(
            "select distinct on (table_name) table_name, checked_at, scope, rows_compared,"
            " rows_differing, rows_repaired, sample_keys from ops.value_checks"
            " order by table_name, checked_at desc"
        ).fetchall()


def collect(conn: psycopg.Connection, *, runs: int = 10) -> dict[str, Any]:
    from haven.ops.history import ensure_schema  # here: it imports the ingest (dlt), which the
    # MCP server, reading latest_value_checks, does not need

    ensure_schema(conn)
    with conn.cursor(row_factory=dict_row) as cursor:
        recent = cursor.execute(
            "select run_id::text, started_at, engine, status, round(wall_seconds::numeric, 1) as wall_seconds,"
            " rows_loaded, tests_passed, tests_failed, round(cost_usd::numeric, 5) as cost_usd,"
            " round(monthly_estimate_usd::numeric, 2) as monthly_estimate_usd, error"
            " from ops.runs order by started_at desc limit %s",
            (runs,),
        ).fetchall()
        latest = recent[0]["run_id"] if recent else None
        freshness = cursor.execute(
            "select source_table, max_loaded_at, round(lag_seconds::numeric / 60, 1) as lag_minutes, status"
            " from ops.source_freshness where run_id = %s order by source_table",
            (latest,),
        ).fetchall()
        failing = cursor.execute(
            "select unique_id, status, message from ops.dbt_results where run_id = %s"
            " and status in ('fail', 'error', 'runtime error') order by unique_id",
            (latest,),
        ).fetchall()
        reconciliation = cursor.execute(
            "select table_name, source_rows, raw_rows, staged_rows, quarantined_rows, row_difference,"
            " amount_difference from ops.reconciliation where run_id = %s order by table_name",
            (latest,),
        ).fetchall()
        exists = cursor.execute(
            "select to_regclass('quarantine.quarantined_rows') is not null as present"
        ).fetchone()
        quarantine = (
            cursor.execute(
                "select source_table, count(*) as rows from quarantine.quarantined_rows group by 1 order by 1"
            ).fetchall()
            if exists and exists["present"]
            else []
        )
    values = latest_value_checks(conn)
    return {
        "runs": recent,
        "freshness": freshness,
        "failing_tests": failing,
        "quarantine": quarantine,
        "reconciliation": reconciliation,
        "reconciliation_differences": [
            row for row in reconciliation if row["row_difference"] or row["amount_difference"]
        ],
        "value_checks": values,
        "value_differences": [row for row in values if row["rows_differing"]],
    }
