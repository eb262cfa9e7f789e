"""The ``ops`` schema: one row per run and its details, written at the end of every run."""

from __future__ import annotations

import contextlib
import pickle
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path

import psycopg

from haven.ops.cost import RunCost
from haven.ops.reconcile import Reconciliation
from haven.settings import Settings
from haven.transform.dbt import ArtifactResult, SourceFreshness
from haven.warehouse.connection import connect
from haven.warehouse.endpoints import TRANSFORMER, Endpoints
from ingestion.pipeline import IngestReport


@dataclass
class TaskTiming:
    name: str
    started_at: datetime
    seconds: float
    """Time inside the task body, all attempts."""
    attempts: int
    status: str
    call_seconds: float = 0.0
    """Time of the task call as the flow saw it (Prefect's bookkeeping and retry waits included)."""


@dataclass
class RunRecord:
    """Everything a run learned, assembled by the flow and written by ``record``."""

    started_at: datetime
    run_id: uuid.UUID = field(default_factory=uuid.uuid4)
    flow_run_id: str | None = None
    deployment: str | None = None
    engine: str = "postgres"
    """Where the dbt project built: postgres or spark."""
    finished_at: datetime | None = None
    status: str = "running"
    error: str | None = None
    wall_seconds: float | None = None
    tasks: list[TaskTiming] = field(default_factory=list)
    ingest: IngestReport | None = None
    dbt_results: dict[str, list[ArtifactResult]] = field(default_factory=dict)
    freshness: list[SourceFreshness] = field(default_factory=list)
    reconciliation: list[Reconciliation] = field(default_factory=list)
    cost: RunCost | None = None

    @property
    def task_seconds(self) -> float:
        return sum(task.seconds for task in self.tasks)

    def test_counts(self) -> dict[str, int]:
        counts = {"pass": 0, "fail": 0, "warn": 0, "error": 0}
        for results in self.dbt_results.values():
            for result in results:
                if result.resource_type in {"test", "unit_test"} and result.status in counts:
                    counts[result.status] += 1
        return counts


def ensure_schema(conn: psycopg.Connection) -> None:
    conn.execute(resources.files("haven.ops").joinpath("schema.sql").read_text())  # type: ignore[arg-type]


def record(conn: psycopg.Connection, run: RunRecord) -> None:
    """Write the run and its details in one transaction (a re-run writes a new run id)."""
    ensure_schema(conn)
    tests = run.test_counts()
    models = sum(
        1
        for results in run.dbt_results.values()
        for result in results
        if result.resource_type in {"model", "snapshot", "seed"} and result.status == "success"
    )
    ingest = run.ingest
    cost = run.cost
    with conn.transaction():
        conn.execute(
            "insert into ops.runs (run_id, flow_run_id, deployment, engine, started_at, finished_at, status, error,"
            " wall_seconds, task_seconds, rows_extracted, rows_loaded, models_built, tests_passed, tests_failed,"
            " tests_warned, cpu_seconds, bytes_moved, warehouse_bytes, cost_usd, monthly_estimate_usd,"
            " monthly_budget_usd) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " %s, %s, %s, %s, %s)",
            (
                run.run_id,
                run.flow_run_id,
                run.deployment,
                run.engine,
                run.started_at,
                run.finished_at,
                run.status,
                run.error,
                run.wall_seconds,
                run.task_seconds,
                sum(t.extracted for t in ingest.tables.values()) if ingest else None,
                ingest.loaded_rows if ingest else None,
                models,
                tests["pass"],
                tests["fail"] + tests["error"],
                tests["warn"],
                cost.cpu_seconds if cost else None,
                cost.bytes_moved if cost else None,
                cost.warehouse_bytes if cost else None,
                cost.run_usd if cost else None,
                cost.monthly_estimate_usd if cost else None,
                cost.monthly_budget_usd if cost else None,
            ),
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                "insert into ops.run_tasks values (%s, %s, %s, %s, %s, %s)",
                [
                    (run.run_id, t.name, t.started_at, t.seconds, t.attempts, t.status)
                    for t in run.tasks
                ],
            )
            if ingest:
                cursor.executemany(
                    "insert into ops.run_tables values (%s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            run.run_id,
                            t.table,
                            t.extracted,
                            t.loaded,
                            t.deleted,
                            t.new_columns,
                            t.problem,
                        )
                        for t in ingest.tables.values()
                    ],
                )
                cursor.executemany(
                    "insert into ops.value_checks values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            run.run_id,
                            t.table,
                            run.finished_at or run.started_at,
                            t.values.scope,
                            t.values.rows_compared,
                            len(t.values.differing),
                            t.values.repaired,
                            t.values.sample_keys,
                            t.values.not_yet_deleted,
                        )
                        for t in ingest.tables.values()
                        if t.values is not None
                    ],
                )
            cursor.executemany(
                "insert into ops.dbt_results (run_id, command, unique_id, resource_type, status, seconds,"
                " rows_affected, message, model) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " on conflict do nothing",
                [
                    (
                        run.run_id,
                        command,
                        r.unique_id,
                        r.resource_type,
                        r.status,
                        r.seconds,
                        r.rows_affected,
                        r.message,
                        r.model,
                    )
                    for command, results in run.dbt_results.items()
                    for r in results
                ],
            )
            cursor.executemany(
                "insert into ops.source_freshness (run_id, source_table, max_loaded_at, lag_seconds,"
                " status, warn_after_seconds, error_after_seconds) values (%s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        run.run_id,
                        f.source_table,
                        f.max_loaded_at,
                        f.lag_seconds,
                        f.status,
                        f.warn_after_seconds,
                        f.error_after_seconds,
                    )
                    for f in run.freshness
                ],
            )
            cursor.executemany(
                "insert into ops.reconciliation values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        run.run_id,
                        r.table_name,
                        r.source_rows,
                        r.raw_rows,
                        r.staged_rows,
                        r.quarantined_rows,
                        r.row_difference,
                        r.money_column,
                        r.source_amount,
                        r.mart_amount,
                        r.quarantined_amount,
                        r.amount_difference,
                    )
                    for r in run.reconciliation
                ],
            )


def keep_pending(run: RunRecord, directory: Path) -> Path:
    """A run that could not be recorded (the warehouse was down when it ended) waits here, to be
    written by the next run (:func:`record_pending`)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{run.run_id}.pickle"
    path.write_bytes(pickle.dumps(run))
    return path


def record_pending(conn: psycopg.Connection, directory: Path) -> list[RunRecord]:
    """Write the runs :func:`keep_pending` kept, oldest first; return them. A run whose record
    did reach the warehouse after all (its commit was in flight) is not written twice."""
    ensure_schema(conn)
    written = []
    for path in sorted(directory.glob("*.pickle"), key=lambda file: file.stat().st_mtime):
        run: RunRecord = pickle.loads(path.read_bytes())  # a file this module wrote
        exists = conn.execute("select from ops.runs where run_id = %s", (run.run_id,)).fetchone()
        if exists is None:
            record(conn, run)
            written.append(run)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return written


def record_kept_runs(settings: Settings, endpoints: Endpoints) -> list[RunRecord]:
    """Write the runs kept while the warehouse was down, if any (the flow at its start, and
    ``haven up``); return them."""
    if not any(settings.pending_runs_dir.glob("*.pickle")):
        return []
    with connect(endpoints.role_url(TRANSFORMER), purpose="warehouse") as conn:
        return record_pending(conn, settings.pending_runs_dir)


def record_alert(
    conn: psycopg.Connection, run_id: uuid.UUID, kind: str, message: str, delivered: bool
) -> None:
    ensure_schema(conn)
    conn.execute(
        "insert into ops.alerts (run_id, kind, message, delivered) select %s, %s, %s, %s"
        " where exists (select from ops.runs where run_id = %s)",
        (run_id, kind, message, delivered, run_id),
    )
