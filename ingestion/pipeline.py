"""``haven ingest``: run the ``app`` source into ``raw_app``, then detect hard deletes.

Runnable directly (``python -m ingestion.pipeline``) as well as through the CLI.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from haven.settings import PROJECT_DIR, Settings

# dlt reads .dlt/config.toml from its project directory, which defaults to the working directory.
os.environ.setdefault("DLT_PROJECT_DIR", str(PROJECT_DIR))

import dlt  # noqa: E402
import psycopg  # noqa: E402
from dlt.common.pipeline import NormalizeInfo  # noqa: E402
from dlt.extract.source import DltSource  # noqa: E402
from dlt.pipeline.exceptions import PipelineStepFailed  # noqa: E402
from psycopg import sql  # noqa: E402

from haven.errors import HavenError, root_cause  # noqa: E402
from haven.source import simulator  # noqa: E402
from haven.warehouse.connection import connect  # noqa: E402
from haven.warehouse.endpoints import LOADER, Endpoints  # noqa: E402
from ingestion.app import app  # noqa: E402
from ingestion.app.helpers import (  # noqa: E402
    TablePlan,
    analyze_raw,
    detect_deletes,
    index_raw,
    loaded_versions,
    preflight,
    restore_deletions,
    widen_columns,
)
from ingestion.app.settings import DATASET, PIPELINE_NAME, TABLES, TableSpec  # noqa: E402
from ingestion.app.values import Scope, ValueCheck, compare_values  # noqa: E402
from ingestion.refresh import (  # noqa: E402
    Progress,
    drop_for_resync,
    forget_cursors,
    forget_tables,
    recover,
    reset,
)


class _QuietDltLog(logging.Filter):
    """dlt's log, kept to what a user reads. connectorx marks every arrow column nullable and
    without precision; dlt keeps the reflected hints (what we want) and warns once per table per
    run: that warning goes. A failing load job is logged with its whole traceback at every
    retry: only its first line and the database's error line stay (the ingest's own error then
    names the step and the cause, in one sentence)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "column hints were different" in message:
            return False
        if record.exc_info or "Traceback (most recent call last)" in message:
            head = message.split("Traceback (most recent call last)")[0].strip()
            cause = [line.strip() for line in message.splitlines() if "ERROR:" in line]
            record.msg = " ".join([head.splitlines()[0] if head else "", *cause[:1]]).strip()
            record.args = ()
            record.exc_info = record.exc_text = None
        return True


logging.getLogger("dlt").addFilter(_QuietDltLog())


@dataclass
class TableReport:
    table: str
    extracted: int = 0
    loaded: int = 0
    deleted: int = 0
    kept_deleted: int = 0
    """Deletion marks a full refresh carried over into the reloaded table."""
    resynced: bool = False
    """Loaded again whole (a column added, or ``--resync``), its deletions kept."""
    note: str | None = None
    """Something the user should know that did not stop the table's load."""
    new_columns: list[str] = field(default_factory=list)
    widened: list[str] = field(default_factory=list)
    """Raw columns given the source's wider type ("commission_rate to numeric(7, 4)")."""
    problem: str | None = None
    values: ValueCheck | None = None
    """What the value reconciliation found (when the ingest was asked for one)."""


@dataclass
class IngestReport:
    tables: dict[str, TableReport]
    seconds: float
    load_id: str | None
    bytes_moved: int = 0
    """Size of the load files written for this run (what crossed from source to warehouse)."""
    recovered: str | None = None
    """One line on what an interrupted earlier ingest left behind and how it was undone."""

    @property
    def failed(self) -> list[TableReport]:
        return [report for report in self.tables.values() if report.problem]

    @property
    def loaded_rows(self) -> int:
        return sum(report.loaded for report in self.tables.values())


def pipeline(settings: Settings, endpoints: Endpoints) -> dlt.Pipeline:
    """The dlt pipeline: working files under ``.haven/dlt``, state kept in the warehouse too."""
    return dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        pipelines_dir=str(settings.dlt_dir),
        destination=dlt.destinations.postgres(credentials=endpoints.role_url(LOADER)),
        dataset_name=DATASET,
    )


def ingest(
    settings: Settings,
    endpoints: Endpoints,
    *,
    tables: tuple[TableSpec, ...] = TABLES,
    full_refresh: bool = False,
    resync: frozenset[str] = frozenset(),
    values: Scope | None = None,
    repair: bool = False,
    progress: Progress = lambda _: None,
) -> IngestReport:
    """Load every table whose preflight passes; tables with a problem are reported, not loaded.

    ``full_refresh`` drops the raw tables and the incremental state first and reloads everything
    (after the source was regenerated, for example). It keeps every deletion: keys gone from the
    source are marked first, and every marked row is held aside and put back after the reload,
    so the models still learn of deletions they have not seen (``reset``).

    ``resync`` names tables to load again whole the same way (after a column was dropped,
    renamed or changed type in the source, once the staging model follows). A table that gained
    a column is re-synced by itself, so the column lands for every row, not only changed ones.

    ``values`` then compares raw's live rows with the source's over every column (``all`` rows,
    or the ``changed`` ones of the overlap window), and ``repair`` reads the rows that differ
    again (an update that never touched the cursor, a row that landed wrong).
    """
    started = time.perf_counter()
    load_started = datetime.now(UTC)
    lag = timedelta(seconds=settings.ingest_lag_seconds)
    reports = {spec.name: TableReport(spec.name) for spec in tables}

    if settings.source_url is None:  # the simulated application on the embedded server
        simulator.require_created(endpoints)
    recovered = None
    if full_refresh:
        progress("keeping raw_app's deletions, dropping raw_app and the incremental state")
        marked, notes = reset(settings, endpoints, load_started)
        dlt_pipeline = pipeline(settings, endpoints).drop()
        for table, count in marked.items():
            if table in reports:
                reports[table].deleted = count
        for table, note in notes.items():
            if table in reports:
                reports[table].note = note
    else:
        progress("looking for an interrupted ingest")
        dlt_pipeline = pipeline(settings, endpoints)
        recovered = recover(dlt_pipeline, endpoints, (*TABLES, *tables), progress)
    progress("checking the source schema against raw_app")
    with (
        connect(endpoints.source_url, purpose="source database") as source,
        connect(endpoints.role_url(LOADER), purpose="warehouse") as warehouse,
    ):
        plans: list[TablePlan] = [
            preflight(
                source, warehouse, settings.source_schema, spec, against_raw=spec.name not in resync
            )
            for spec in tables
        ]
        whole = [
            plan
            for plan in plans
            if plan.problem is None and (plan.spec.name in resync or plan.new_columns)
        ]
        if whole:
            names = ", ".join(plan.spec.name for plan in whole)
            progress(f"re-syncing {names}: keeping their deletions, dropping them from raw_app")
            for plan in whole:
                report = reports[plan.spec.name]
                report.resynced = True
                report.deleted, report.note = drop_for_resync(
                    source, warehouse, settings, plan, load_started
                )
                plan.raw_exists = False  # so it is a first load: dlt forgets it below
        for plan in plans:
            reports[plan.spec.name].new_columns = plan.new_columns
            reports[plan.spec.name].problem = plan.problem
            if plan.problem is None and plan.widened:
                widen_columns(warehouse, plan.spec, plan.widened)
                reports[plan.spec.name].widened = [
                    f"{name} to {wider}" for name, wider in plan.widened.items()
                ]
        runnable = tuple(plan.spec for plan in plans if plan.problem is None)
        loaded = {
            plan.spec.name: loaded_versions(warehouse, plan.spec, plan.key, lag)
            for plan in plans
            if plan.problem is None and plan.raw_exists and plan.spec.mutable
        }
        appended_through = {
            plan.spec.name: appended_cursor(warehouse, plan.spec)
            for plan in plans
            if plan.problem is None and plan.raw_exists and not plan.spec.mutable
        }

    def on_batch(table: str, rows: int) -> None:
        reports[table].extracted += rows
        progress(f"extracting {table}: {reports[table].extracted:,} rows")

    load_id = None
    bytes_moved = 0
    if runnable:
        first_loads = frozenset(plan.spec.name for plan in plans if not plan.raw_exists)
        # an append-only table continues from what raw holds, not from dlt's cursor: a load
        # that failed after its extract moved the cursor must not lose the rows it carried
        # a table missing from raw starts afresh in dlt too: its cursor and its schema (a
        # re-sync killed after dropping the table must not bring back a column the source lost)
        forget_tables(dlt_pipeline, endpoints, sorted(first_loads))
        forget_cursors(dlt_pipeline, frozenset(appended_through))
        source = app(
            credentials=endpoints.source_url,
            schema=settings.source_schema,
            tables=runnable,
            lag_seconds=settings.ingest_lag_seconds,
            loaded=loaded,
            first_loads=first_loads,
            appended_through=appended_through,
            decimals={plan.spec.name: plan.decimals for plan in plans},
            primary_keys={plan.spec.name: plan.key for plan in plans},
            on_batch=on_batch,
        )
        load_id, normalized = _load(dlt_pipeline, source, progress)
        bytes_moved = _tally(normalized, reports)

    progress("looking for hard deletes, indexing and analysing raw_app")
    with (
        connect(endpoints.source_url, purpose="source database") as source,
        connect(endpoints.role_url(LOADER), purpose="warehouse") as warehouse,
    ):
        for plan in plans:
            if plan.problem is None and plan.spec.mutable:
                reports[plan.spec.name].kept_deleted = restore_deletions(
                    warehouse, plan.spec, plan.key
                )
                _detect_deletes(source, warehouse, settings, plan, load_started, reports)
            if plan.problem is None:
                index_raw(warehouse, plan.spec, plan.key)
                analyze_raw(warehouse, plan.spec, reports[plan.spec.name].loaded)
    report = IngestReport(reports, time.perf_counter() - started, load_id, bytes_moved, recovered)
    if values is not None:
        checked = [plan for plan in plans if plan.problem is None]
        _check_values(settings, endpoints, checked, values, report, progress)
        if repair:
            _repair(settings, endpoints, dlt_pipeline, checked, values, report, progress)
    report.seconds = time.perf_counter() - started
    return report


def _load(
    dlt_pipeline: dlt.Pipeline, source: DltSource, progress: Progress
) -> tuple[str | None, NormalizeInfo]:
    """Extract, normalize and load ``source``; a failure is one sentence naming the step."""
    try:
        progress("extracting")
        dlt_pipeline.extract(source, loader_file_format="parquet")
        progress("normalizing")
        normalized = dlt_pipeline.normalize()
        progress("loading into raw_app (parquet, binary COPY)")
        info = dlt_pipeline.load()
    except PipelineStepFailed as error:
        raise HavenError(
            f"The ingest failed at the {error.step} step: {root_cause(error)}."
        ) from None
    except BaseException as error:
        # connectorx panics (a pyo3 PanicException, a BaseException) when its connection is
        # reset mid-read; as an ordinary error the flow can judge it and retry
        if type(error).__name__ != "PanicException":
            raise
        raise HavenError(
            f"The ingest failed at the extract step: {str(error).splitlines()[0]}."
        ) from None
    return (info.loads_ids[-1] if info.loads_ids else None), normalized


def _tally(normalized: NormalizeInfo, tables: dict[str, TableReport]) -> int:
    """Add a load's rows to each table's report; return the size of the load files written
    (what crossed from source to warehouse)."""
    for table_name, rows in normalized.row_counts.items():
        if table_name in tables:
            tables[table_name].loaded += rows
    return sum(
        metrics.file_size
        for packages in normalized.metrics.values()
        for step in packages
        for metrics in step["job_metrics"].values()
    )


def _check_values(
    settings: Settings,
    endpoints: Endpoints,
    plans: list[TablePlan],
    scope: Scope,
    report: IngestReport,
    progress: Progress,
) -> None:
    """Compare raw's values with the source's for ``plans``' tables; each table's finding goes
    into its report (``TableReport.values``)."""
    rows = "every row" if scope == "all" else "the rows in the overlap window"
    progress(f"comparing raw_app's values with the source ({rows})")
    lag = timedelta(seconds=settings.ingest_lag_seconds)
    with (
        connect(endpoints.source_url, purpose="source database") as source,
        connect(endpoints.role_url(LOADER), purpose="warehouse") as warehouse,
    ):
        for plan in plans:
            report.tables[plan.spec.name].values = compare_values(
                source,
                warehouse,
                settings.source_schema,
                plan.spec,
                plan.key,
                scope,
                lag=lag,
                load_id=report.load_id,
            )


REPAIR_KEYS = 20_000
"""A table with more differing rows than this is re-synced whole rather than read by key."""


def _repair(
    settings: Settings,
    endpoints: Endpoints,
    dlt_pipeline: dlt.Pipeline,
    plans: list[TablePlan],
    scope: Scope,
    report: IngestReport,
    progress: Progress,
) -> None:
    """Read the differing rows again from the source and merge them into raw (a table with more
    than ``REPAIR_KEYS`` of them is re-synced whole, its deletions kept), then compare again:
    each table's ``values`` then says how many were repaired and what still differs."""
    broken = {
        plan.spec.name: plan
        for plan in plans
        if (check := report.tables[plan.spec.name].values) is not None and check.differing
    }
    if not broken:
        return
    found = {name: len(report.tables[name].values.differing) for name in broken}  # type: ignore[union-attr]
    by_key = {name: plan for name, plan in broken.items() if found[name] <= REPAIR_KEYS}
    if by_key:
        progress(f"repairing {', '.join(by_key)}: reading the differing rows again")

        def on_batch(table: str, rows: int) -> None:
            report.tables[table].extracted += rows

        source = app(
            credentials=endpoints.source_url,
            schema=settings.source_schema,
            tables=tuple(plan.spec for plan in by_key.values()),
            decimals={name: plan.decimals for name, plan in by_key.items()},
            primary_keys={name: plan.key for name, plan in by_key.items()},
            repair={name: report.tables[name].values.differing for name in by_key},  # type: ignore[union-attr]
            on_batch=on_batch,
        )
        report.load_id, normalized = _load(dlt_pipeline, source, progress)
        report.bytes_moved += _tally(normalized, report.tables)
    for name, plan in broken.items():
        if name in by_key:
            continue
        progress(f"repairing {name}: {found[name]:,} rows differ, re-syncing the table")
        again = ingest(settings, endpoints, tables=(plan.spec,), resync=frozenset({name}))
        table = report.tables[name]
        table.loaded += again.tables[name].loaded
        table.extracted += again.tables[name].extracted
        table.resynced = True
        table.problem = again.tables[name].problem
        report.bytes_moved += again.bytes_moved
        report.load_id = again.load_id or report.load_id
    _check_values(settings, endpoints, list(broken.values()), scope, report, progress)
    for name in broken:
        check = report.tables[name].values
        if check is not None:
            check.repaired = found[name] - len(check.differing)


def appended_cursor(warehouse: psycopg.Connection, spec: TableSpec) -> object:
    """The highest cursor value an append-only raw table holds (None when it is empty)."""
    row = warehouse.execute(
        sql.SQL("select max({}) from {}.{}").format(
            sql.Identifier(spec.cursor), sql.Identifier(DATASET), sql.Identifier(spec.name)
        )
    ).fetchone()
    return row[0] if row else None


def _detect_deletes(
    source: psycopg.Connection,
    warehouse: psycopg.Connection,
    settings: Settings,
    plan: TablePlan,
    load_started: datetime,
    reports: dict[str, TableReport],
) -> None:
    """Hard-delete detection for one table; a failure stops only this table, with the cause named,
    and leaves nothing half-done (the marking runs in one transaction)."""
    try:
        reports[plan.spec.name].deleted = detect_deletes(
            source, warehouse, settings.source_schema, plan.spec, plan.key, load_started
        )
    except psycopg.Error as error:
        reports[
            plan.spec.name
        ].problem = f"hard-delete detection for {plan.spec.name} failed: {root_cause(error)}"


if __name__ == "__main__":
    from haven.settings import get_settings
    from haven.warehouse.endpoints import up

    settings = get_settings()
    result = ingest(settings, up(settings), progress=print)
    print(f"loaded {result.loaded_rows:,} rows in {result.seconds:.1f} s")
