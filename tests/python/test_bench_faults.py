"""The fault benchmark, small: two runs through the fault proxy with 3 % of connections faulted
and the warehouse killed in one of them. Every run must succeed (with retries), raw must equal
the source and the marts a full rebuild after each run; and faults must really have happened."""

from __future__ import annotations

from pathlib import Path

from haven.bench import faults
from tests.python.conftest import settings_for


def test_runs_survive_faults_and_a_killed_warehouse(haven_home: Path, prefect_client: str) -> None:
    settings = settings_for(haven_home, "faults")
    result = faults.run(
        settings,
        runs=2,
        scale=0.005,
        fault_share=0.03,
        stall_seconds=0.5,
        kills=1,
        baseline_runs=0,
        seed=3,
    )
    report = faults.markdown(result, "test")
    assert len(result.faulted_runs) == 2, report
    assert all(run.succeeded for run in result.outcomes), report
    assert sum(run.killed for run in result.faulted_runs) == 1, report
    assert sum(run.retries for run in result.faulted_runs) >= 1, report
    injected = result.warehouse_connections.faulted + result.source_connections.faulted
    assert injected > 0, report
    assert result.rows_lost == 0 and result.rows_duplicated == 0, report
    assert all(not run.raw_tables_differing for run in result.outcomes), report
    assert result.mart_checks == (2, 2), report
