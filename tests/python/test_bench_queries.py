"""`haven bench queries` on a small warehouse: every query of the suite runs in both phases (40
transactions each: a benchmark's seconds only measure speed), the indexes are back afterwards,
and the report is written. Timings are reported, never asserted."""

from __future__ import annotations

from pathlib import Path

import psycopg

from haven.bench import queries as bench
from haven.source import simulator
from haven.transform.dbt import dbt_args, dbt_environment, run_dbt
from haven.warehouse.endpoints import up
from ingestion.pipeline import ingest
from tests.python.conftest import settings_for


def test_query_suite_runs_with_and_without_indexes(haven_home: Path, tmp_path: Path) -> None:
    settings = settings_for(haven_home, "benchq")
    endpoints = up(settings)
    simulator.init(endpoints, scale=0.02, seed=4, replace=True)
    ingest(settings, endpoints, full_refresh=True)
    assert run_dbt(
        dbt_args("build", exclude="resource_type:test resource_type:unit_test"),
        dbt_environment(settings, endpoints),
    ).success

    def index_definitions() -> set[str]:
        with psycopg.connect(endpoints.warehouse_url) as conn:
            return {
                row[0]
                for row in conn.execute(
                    "select indexdef from pg_indexes where schemaname in ('analytics', 'ml')"
                )
            }

    before = index_definitions()
    result = bench.run(settings, endpoints, scale="0.02", transactions=40)
    assert index_definitions() == before, "every mart index is recreated after the unindexed phase"
    assert len(result.queries) == len(bench.suite()) >= 12
    for query in result.queries:
        assert query.indexed.transactions > 0 and query.unindexed.transactions > 0
        assert query.indexed.p50_ms <= query.indexed.p95_ms <= query.indexed.p99_ms
        assert query.plan
    assert result.indexes_total == len(before)
    assert set(result.indexes_used) | set(result.indexes_unused) == set(
        bench._index_usage(endpoints)
    )
    for query in result.queries:  # pgbench ran exactly the transactions asked for
        assert query.indexed.transactions == query.unindexed.transactions == 40
    json_path, markdown_path = bench.write_report(result, tmp_path, "test machine")
    report = markdown_path.read_text()
    assert json_path.exists() and "Index utilisation" in report
    assert "40 transactions per query per phase" in report
