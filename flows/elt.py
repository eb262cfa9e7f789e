"""The ``elt`` flow: ingest → build (one ``dbt build``: staging, snapshots, marts, features and
their tests in DAG order) → source freshness → reconcile → record → report. Thin: each task
calls code that already exists; the flow only sequences them.

Transient failures (lost connections, a server restarting) are retried with exponential backoff
and jitter; a failed data test or a schema contract violation fails the run at once, naming the
test or table. Two runs never overlap (an advisory lock in the warehouse). Runnable directly:
``python -m flows.elt``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from haven.settings import PROJECT_DIR, Engine, Settings, get_settings

# Prefect keeps its database and settings under .haven/prefect unless told otherwise.
os.environ.setdefault("PREFECT_HOME", str(get_settings().prefect_dir))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.cache_policies import NONE  # noqa: E402
from prefect.runtime import deployment, flow_run, task_run  # noqa: E402
from prefect.tasks import exponential_backoff  # noqa: E402

from haven.errors import DataTestFailure, HavenError, TransientError  # noqa: E402
from haven.ops import alerts, history, report  # noqa: E402
from haven.ops.cost import RunCost, cpu_seconds, estimate  # noqa: E402
from haven.ops.docs import generate as generate_docs  # noqa: E402
from haven.ops.lock import exclusive_run  # noqa: E402
from haven.ops.reconcile import (  # noqa: E402
    STAGED_TEST,
    Reconciliation,
    explain_staged_difference,
    reconcile_endpoints,
)
from haven.transform.changes import build_if_changed  # noqa: E402
from haven.transform.dbt import (  # noqa: E402
    DbtOutcome,
    build_variables,
    dbt_args,
    dbt_environment,
    read_run_results,
    read_source_freshness,
    run_dbt,
    spark_build,
)
from haven.warehouse import spark  # noqa: E402
from haven.warehouse.connection import connect  # noqa: E402
from haven.warehouse.endpoints import (  # noqa: E402
    TRANSFORMER,
    Endpoints,
    embedded_server,
    up,
    uses_embedded_server,
)
from ingestion.pipeline import IngestReport, ingest  # noqa: E402


class _SentenceOnly(logging.Filter):
    """Prefect logs a failed task or flow with its traceback; for a HavenError (a problem the user
    can fix, said in one sentence) the traceback only buries the sentence, so it is dropped.
    Any other exception is a bug and keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], HavenError):
            record.exc_info = None
            record.exc_text = None
        return True


for _name in ("prefect.flow_runs", "prefect.task_runs"):
    logging.getLogger(_name).addFilter(_SentenceOnly())

TRANSIENT_MARKERS = (
    "could not connect",
    "connection refused",
    "server closed the connection",
    "terminating connection",
    "connection reset",
    "connection timed out",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "is the server running",
    "no connection to the server",
    "could not receive data from server",
    "could not send data to server",
    "consuming input failed",
    "connection already closed",
    "ssl syscall error",
    "eof detected",
    "broken pipe",
    "connection is lost",
    "timed out waiting for connection",
    "terminated abnormally",
    "before or while processing the request",
    "unexpected postmaster exit",
    "timeout expired",
    # Spark: the Thrift server's connection, or every executor of a stage, lost
    "ttransportexception",
    "executorlostfailure",
)


def is_transient(error: BaseException) -> bool:
    """Worth retrying: our TransientError, a dropped connection, or a message that says so."""
    if isinstance(error, TransientError | psycopg.OperationalError | ConnectionError):
        return True
    if isinstance(error, DataTestFailure):
        return False
    text = str(error).lower()
    return any(marker in text for marker in TRANSIENT_MARKERS)


def retry_transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry the failed attempt only when its error is transient."""
    try:
        state.result()
    except BaseException as error:  # noqa: BLE001 - the state carries the task's exception
        return is_transient(error)
    return False


RETRY = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_transient_only,
    "cache_policy": NONE,
}

_attempts: dict[str, int] = {}
_body_seconds: dict[str, float] = {}
_dbt_results: dict[str, list[Any]] = {}
"""The last dbt results of each step, kept even when the step fails, so a run that failed on a
test still records which tests failed."""


@contextlib.contextmanager
def _measured(name: str) -> Iterator[None]:
    """Count the attempt and the time spent inside the task body (all attempts), so the flow can
    tell work from orchestration."""
    _attempts[name] = task_run.run_count or 1
    if _attempts[name] > 1:
        _restart_embedded_warehouse()
    began = time.perf_counter()
    try:
        yield
    finally:
        _body_seconds[name] = _body_seconds.get(name, 0.0) + time.perf_counter() - began


def _restart_embedded_warehouse() -> None:
    """Before a retry: if the embedded server went down (a crash, a kill), start it again on the
    same port, so the run's URLs still hold. A configured server is never touched."""
    settings = get_settings()
    if uses_embedded_server(settings):
        embedded_server(settings).start()


def _check_dbt(outcome: DbtOutcome, step: str, explanation: str | None = None) -> None:
    """A dbt failure is transient when it is about the connection; otherwise it names what failed
    (and, with ``explanation``, what a failed test found and what to run)."""
    if outcome.success:
        return
    messages = " ".join(
        filter(None, [outcome.error, *(node.message or "" for node in outcome.failures)])
    )
    if is_transient(HavenError(messages)):
        raise TransientError(f"dbt {step} lost the warehouse connection: {messages[:300]}")
    if outcome.failures:
        names = ", ".join(node.name for node in outcome.failures[:10])
        found = f"; {explanation}" if explanation else ""
        raise DataTestFailure(
            f"dbt {step} failed: {len(outcome.failures)} node(s) failed: {names}{found}"
        )
    raise HavenError(f"dbt {step} failed: {outcome.error or 'see logs/dbt.log'}")


def _explain(outcome: DbtOutcome, endpoints: Endpoints) -> str | None:
    """What the failing reconciliation test found, when it failed (on PostgreSQL)."""
    if any(node.name == STAGED_TEST for node in outcome.failures):
        return explain_staged_difference(endpoints)
    return None


@task(name="ingest", timeout_seconds=3600, **RETRY)
def ingest_step(
    settings: Settings, endpoints: Endpoints, full_refresh: bool, full_tests: bool, engine: Engine
) -> IngestReport:
    """Into PostgreSQL's raw, its values compared with the source's and differing rows read
    again (every row when ``full_tests``, the nightly run; the re-read window otherwise); for
    Spark also what changed appended to the lake."""
    with _measured("ingest"):
        report = ingest(
            settings,
            endpoints,
            full_refresh=full_refresh,
            values="all" if full_tests else "changed",
            repair=True,
        )
        if report.failed:
            details = "; ".join(f"{row.table}: {row.problem}" for row in report.failed)
            raise DataTestFailure(f"schema contract violated, not loaded: {details}")
        if engine is Engine.spark:
            from ingestion import lake  # dlt's filesystem destination: only for Spark

            landed = lake.export(settings, endpoints, spark.up(settings))
            print(f"{sum(landed.rows.values()):,} raw version(s) appended to the Spark lake")
        return report


@task(name="build", timeout_seconds=3600, **RETRY)
def build_step(
    settings: Settings,
    endpoints: Endpoints,
    full_refresh: bool,
    variables: dict[str, object],
    engine: Engine,
) -> list[Any]:
    """One ``dbt build``: dbt parses once and runs seeds, staging,
    snapshots, marts, features and every test in DAG order, so staging is built once and the
    snapshots still read it before the marts read them. Only the part below the raw tables that
    changed since the last complete build of the same project, and skipped, saying so, when none
    did (haven.transform.changes). On Spark the whole project builds from the lake (every
    time: the plan reads PostgreSQL's marks)."""
    with _measured("build"):
        if engine is Engine.spark:
            outcome: DbtOutcome | None = spark_build(
                settings, endpoints, variables=variables, full_refresh=full_refresh
            )
        else:
            outcome = build_if_changed(
                settings, endpoints, full_refresh=full_refresh, variables=variables, progress=print
            )
        if outcome is None:
            print("nothing changed since the last build: dbt build skipped")
            return []
        results = read_run_results(settings.dbt_target_dir)
        _dbt_results["build"] = results
        explanation = _explain(outcome, endpoints) if engine is Engine.postgres else None
        _check_dbt(outcome, "build", explanation)
        return results


@task(name="freshness", timeout_seconds=600, **RETRY)
def freshness_step(
    settings: Settings, endpoints: Endpoints, variables: dict[str, object]
) -> list[Any]:
    """Freshness breaches are reported and alerted on, not fatal: the data is still correct.
    The build's vars again, so dbt reuses the build's parse."""
    with _measured("freshness"):
        outcome = run_dbt(
            ["source", *dbt_args("freshness", variables=variables)],
            dbt_environment(settings, endpoints),
        )
        freshness = read_source_freshness(settings.dbt_target_dir)
        if not freshness and not outcome.success:
            _check_dbt(outcome, "source freshness")
        return freshness


@task(name="reconcile", timeout_seconds=900, **RETRY)
def reconcile_step(
    settings: Settings, endpoints: Endpoints, engine: Engine
) -> list[Reconciliation]:
    """The source against the warehouse that was built (PostgreSQL's, or Spark's tables)."""
    with _measured("reconcile"):
        built = spark.up(settings) if engine is Engine.spark else None
        return reconcile_endpoints(endpoints, settings.source_schema, built)


@task(name="record", timeout_seconds=300, **RETRY)
def record_step(endpoints: Endpoints, run: history.RunRecord) -> None:
    with _measured("record"), connect(endpoints.role_url(TRANSFORMER), purpose="warehouse") as conn:
        history.record(conn, run)


@task(name="report", timeout_seconds=300, **RETRY)
def report_step(settings: Settings, endpoints: Endpoints) -> str:
    with _measured("report"), connect(endpoints.role_url(TRANSFORMER), purpose="warehouse") as conn:
        return str(report.write(conn, settings.report_path, budget_usd=settings.monthly_budget_usd))


@task(name="docs", timeout_seconds=900, **RETRY)
def docs_step(settings: Settings, endpoints: Endpoints) -> None:
    with _measured("docs"):
        generate_docs(settings, endpoints)


T = TypeVar("T")


@dataclass
class RunSummary:
    run: history.RunRecord
    report_path: str | None
    alerts: list[alerts.Alert]


@flow(name="elt", log_prints=True)
def elt(
    full_refresh: bool = False,
    docs: bool = False,
    full_tests: bool = False,
    endpoints: Endpoints | None = None,
    engine: Engine = Engine.postgres,
) -> RunSummary:
    """The whole pipeline, once. An incremental run tests the rows it changed; ``full_tests``
    (nightly) or ``full_refresh`` test everything. ``docs`` also regenerates the dbt docs site.
    ``endpoints`` defaults to ``up()``'s; the fault benchmark passes URLs through its proxies.
    ``engine`` spark builds on the Spark cluster from the lake; the run's record, its freshness
    (of the raw data both engines read) and the report stay in PostgreSQL, the control plane."""
    settings = get_settings()
    endpoints = endpoints or up(settings)
    logger = get_run_logger()
    run = history.RunRecord(
        started_at=datetime.now(UTC),
        flow_run_id=str(flow_run.id) if flow_run.id else None,
        deployment=deployment.name,
        engine=str(engine),
    )
    _attempts.clear()
    _body_seconds.clear()
    _dbt_results.clear()
    cpu_before = cpu_seconds(_server_data(endpoints))
    wall = time.perf_counter()

    def step(name: str, call: Callable[[], T]) -> T:
        started, began = datetime.now(UTC), time.perf_counter()
        try:
            result = call()
        except BaseException:
            run.tasks.append(
                history.TaskTiming(
                    name, started, time.perf_counter() - began, _attempts.get(name, 1), "failed"
                )
            )
            raise
        run.tasks.append(
            history.TaskTiming(
                name, started, time.perf_counter() - began, _attempts.get(name, 1), "completed"
            )
        )
        return result

    raised: BaseException | None = None
    report_path = None
    sent: list[alerts.Alert] = []
    with exclusive_run(endpoints.role_url(TRANSFORMER)):
        for kept in history.record_kept_runs(settings, endpoints):
            logger.info("recorded run %s (the warehouse was down when it ended)", kept.run_id)
        try:
            run.ingest = step(
                "ingest", lambda: ingest_step(settings, endpoints, full_refresh, full_tests, engine)
            )
            variables = build_variables(full_refresh=full_refresh, full_tests=full_tests)
            run.dbt_results["build"] = step(
                "build", lambda: build_step(settings, endpoints, full_refresh, variables, engine)
            )
            run.freshness = step(
                "freshness", lambda: freshness_step(settings, endpoints, variables)
            )
            run.reconciliation = step(
                "reconcile", lambda: reconcile_step(settings, endpoints, engine)
            )
            if docs:
                step("docs", lambda: docs_step(settings, endpoints))
            run.status = "completed"
        except BaseException as error:  # noqa: BLE001 - recorded, alerted, then re-raised
            raised = error
            for command, results in _dbt_results.items():
                run.dbt_results.setdefault(command, results)
            run.status = "failed"
            run.error = str(error).splitlines()[0] if str(error) else type(error).__name__
        run.finished_at = datetime.now(UTC)
        run.wall_seconds = time.perf_counter() - wall
        run.cost = _cost(
            settings, endpoints, run, cpu_seconds(_server_data(endpoints)) - cpu_before
        )
        try:
            step("record", lambda: record_step(endpoints, run))
        except Exception as error:  # noqa: BLE001 - the warehouse is still down after the retries
            kept = history.keep_pending(run, settings.pending_runs_dir)
            logger.warning(
                "run %s could not be recorded (%s); kept in %s, the next run records it",
                run.run_id,
                str(error).splitlines()[0] if str(error) else type(error).__name__,
                kept,
            )  # the work is done (or its failure raised below); only the bookkeeping waits
        else:
            report_path = step("report", lambda: report_step(settings, endpoints))
        for alert in _alerts_for(run):
            delivered = alerts.send(alert, settings.alert_webhook)
            with (
                contextlib.suppress(HavenError, psycopg.Error),
                connect(endpoints.role_url(TRANSFORMER), purpose="warehouse") as conn,
            ):
                history.record_alert(conn, run.run_id, alert.kind, alert.message, delivered)
            sent.append(alert)
    logger.info(
        "elt %s in %.1f s: %.1f s inside tasks, %.1f s orchestration",
        run.status,
        time.perf_counter() - wall,
        run.task_seconds,
        time.perf_counter() - wall - run.task_seconds,
    )
    if raised is not None:
        raise raised
    return RunSummary(run, report_path, sent)


def _server_data(endpoints: Endpoints) -> Path | None:
    return embedded_server(get_settings()).data_dir if endpoints.embedded else None


def _cost(settings: Settings, endpoints: Endpoints, run: history.RunRecord, cpu: float) -> RunCost:
    """The run's cost; the warehouse's size counts as 0 when the warehouse cannot be reached."""
    size = 0
    with (
        contextlib.suppress(HavenError, psycopg.Error),
        connect(endpoints.warehouse_url, purpose="warehouse") as conn,
    ):
        size = int(conn.execute("select pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]
    moved = run.ingest.bytes_moved if run.ingest else 0
    return estimate(settings, cpu=cpu, bytes_moved=moved, warehouse_bytes=size)


def _timing(name: str, started: datetime, began: float, status: str) -> history.TaskTiming:
    return history.TaskTiming(
        name,
        started,
        seconds=_body_seconds.get(name, 0.0),
        attempts=_attempts.get(name, 1),
        status=status,
        call_seconds=time.perf_counter() - began,
    )


def _alerts_for(run: history.RunRecord) -> list[alerts.Alert]:
    found = []
    if run.status == "failed":
        found.append(alerts.Alert("failed_run", f"run {run.run_id} failed: {run.error}"))
    stale = [
        f"{f.source_table} ({f.status})"
        for f in run.freshness
        if f.status not in {"pass", "success"}
    ]
    if stale:
        found.append(
            alerts.Alert("freshness", "sources past their freshness threshold: " + ", ".join(stale))
        )
    if run.ingest is not None:
        differing = [
            f"{t.table} ({len(t.values.differing):,} row(s), keys {', '.join(t.values.sample_keys)})"
            for t in run.ingest.tables.values()
            if t.values is not None and t.values.differing
        ]
        if differing:
            found.append(
                alerts.Alert(
                    "reconciliation",
                    "raw_app's values differ from the source after the repair: "
                    + ", ".join(differing)
                    + "; run `haven ingest --repair`",
                )
            )
    unbalanced = [r for r in run.reconciliation if not r.balanced]
    if unbalanced:
        details = ", ".join(
            f"{r.table_name} (rows off by {r.row_difference}"
            + (f", amount off by {r.amount_difference}" if r.amount_difference else "")
            + ")"
            for r in unbalanced
        )
        found.append(
            alerts.Alert("reconciliation", "differences between source and warehouse: " + details)
        )
    return found


if __name__ == "__main__":
    summary = elt()
    print(f"elt {summary.run.status}; report: {summary.report_path}; project: {PROJECT_DIR}")
