"""``haven ingest``: run the ``app`` source into ``raw_app``, then detect hard deletes.

Runnable directly (``python -m ingestion.pipeline``) as well as through the CLI.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from haven.settings import PROJECT_DIR, Settings

# dlt reads .dlt/config.toml from its project directory, which defaults to the working directory.
os.environ.setdefault("DLT_PROJECT_DIR", str(PROJECT_DIR))

import dlt  # noqa: E402
import psycopg  # noqa: E402
from dlt.common.pipeline import NormalizeInfo  # noqa: E402
from dlt.extract.source import DltSource  # noqa: E402
from dlt.extract.state import reset_resource_state  # noqa: E402
from dlt.pipeline.exceptions import PipelineStepFailed  # noqa: E402
from psycopg import sql  # noqa: E402

from haven.errors import HavenError  # noqa: E402
from haven.source import simulator  # noqa: E402
from haven.warehouse.connection import connect  # noqa: E402
from haven.warehouse.endpoints import LOADER, Endpoints  # noqa: E402
from ingestion.app import app  # noqa: E402
from ingestion.app.helpers import (  # noqa: E402
    TablePlan,
    analyze_raw,
    column_types,
    detect_deletes,
    hold_deletions,
    index_raw,
    loaded_versions,
    preflight,
    restore_deletions,
    widen_columns,
)
from ingestion.app.settings import TABLES, TableSpec  # noqa: E402
from ingestion.app.values import Scope, ValueCheck, compare_values  # noqa: E402


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

PIPELINE_NAME = "app"
DATASET = "raw_app"


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


Progress = Callable[[str], None]


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
        dlt_pipeline, marked, notes = reset(settings, endpoints, load_started)
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
                report.deleted, report.note = _drop_for_resync(
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
        _forget_tables(dlt_pipeline, endpoints, sorted(first_loads))
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
        for table_name, rows in normalized.row_counts.items():
            if table_name in reports:
                reports[table_name].loaded += rows
        bytes_moved = _bytes_moved(normalized)

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
            f"The ingest failed at the {error.step} step: {_root_cause(error)}."
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


def _bytes_moved(normalized: NormalizeInfo) -> int:
    """Size of the load files written (what crossed from source to warehouse)."""
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
        for table_name, rows in normalized.row_counts.items():
            if table_name in report.tables:
                report.tables[table_name].loaded += rows
        report.bytes_moved += _bytes_moved(normalized)
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


def recover(
    dlt_pipeline: dlt.Pipeline,
    endpoints: Endpoints,
    tables: tuple[TableSpec, ...] = TABLES,
    progress: Progress = lambda _: None,
) -> str | None:
    """Finish what a killed or failed ingest left half done, before this run plans its own work.

    dlt keeps an interrupted run's load packages and, left alone, loads them beside this run's
    own: a first load or an append-only table then gets its rows twice. So pending packages are
    completed first (dlt resumes them job by job; merges are idempotent on the key), and only then
    does this run look at raw and extract what is still missing. A job whose COPY had committed
    when the process died is replayed by dlt; the exact copies that leaves (identical rows, the
    load id included) are removed. A package that cannot be completed is aborted instead, which rewinds dlt's
    cursors to where it started, and the rows it had appended are removed so they arrive once.
    Returns one line saying what was recovered, or None when nothing was pending.
    """
    pending = sorted(
        {
            *dlt_pipeline.list_extracted_load_packages(),
            *dlt_pipeline.list_normalized_load_packages(),
        }
    )
    if not pending:
        return None
    progress(f"completing {len(pending)} load package(s) left by an interrupted ingest")
    try:
        dlt_pipeline.normalize()
        dlt_pipeline.load()
        completed = True
    except PipelineStepFailed:
        completed = False
        try:
            dlt_pipeline.abort_packages()
        except PipelineStepFailed as error:
            raise HavenError(
                "Could not complete or discard the unfinished load left by an interrupted "
                f"ingest: {_root_cause(error)}."
            ) from None
    removed = 0
    with (
        connect(endpoints.role_url(LOADER), purpose="warehouse") as warehouse,
        warehouse.transaction(),
    ):
        for spec in dict.fromkeys(tables):
            relation = sql.SQL("{}.{}").format(sql.Identifier(DATASET), sql.Identifier(spec.name))
            exists = warehouse.execute(
                "select to_regclass(%s) is not null", (f"{DATASET}.{spec.name}",)
            ).fetchone()
            if not exists or not exists[0]:
                continue
            if completed:
                statement = sql.SQL(
                    "delete from {relation} as r using (select ctid from (select ctid,"
                    " row_number() over (partition by t::text order by ctid) as copy"
                    " from {relation} as t where _dlt_load_id = any(%s)) as c where c.copy > 1)"
                    " as d where r.ctid = d.ctid"
                ).format(relation=relation)
            elif not spec.mutable:
                statement = sql.SQL("delete from {} where _dlt_load_id = any(%s)").format(relation)
            else:
                continue
            removed += warehouse.execute(statement, (pending,)).rowcount
    done = "completed" if completed else "discarded (to be extracted again)"
    return (
        f"recovered an interrupted ingest: {done} {len(pending)} unfinished load package(s),"
        f" removed {removed:,} row(s) that would have been duplicates"
    )


def appended_cursor(warehouse: psycopg.Connection, spec: TableSpec) -> object:
    """The highest cursor value an append-only raw table holds (None when it is empty)."""
    row = warehouse.execute(
        sql.SQL("select max({}) from {}.{}").format(
            sql.Identifier(spec.cursor), sql.Identifier(DATASET), sql.Identifier(spec.name)
        )
    ).fetchone()
    return row[0] if row else None


def forget_cursors(dlt_pipeline: dlt.Pipeline, tables: frozenset[str]) -> None:
    """A table that is not in raw_app is loaded from its beginning, whatever cursor dlt remembers
    (a raw table dropped by hand, or a full refresh killed after dropping raw but before dlt's
    state was reset)."""
    if not tables:
        return
    with dlt_pipeline.managed_state() as state:
        source_state = state.get("sources", {}).get(PIPELINE_NAME)
        if source_state is not None:
            for table in tables:
                reset_resource_state(table, source_state)


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
        ].problem = f"hard-delete detection for {plan.spec.name} failed: {_root_cause(error)}"


def _mark_deletes(
    source: psycopg.Connection,
    warehouse: psycopg.Connection,
    settings: Settings,
    spec: TableSpec,
    key: tuple[str, ...],
    marked_at: datetime,
) -> tuple[int, str | None]:
    """Before a raw table is dropped to load it again: mark its keys gone from the source since
    the last ingest, so they are held with the earlier marks. Returns how many were marked, and
    a note when they could not be looked for (a key whose type changed in the source cannot be
    compared with raw's; the earlier marks are still kept)."""
    try:
        return detect_deletes(source, warehouse, settings.source_schema, spec, key, marked_at), None
    except psycopg.Error as error:
        return 0, (
            "deletes since the last ingest were not looked for before the table was loaded"
            f" again ({_root_cause(error)}); earlier deletion marks were kept"
        )


def _drop_raw_table(warehouse: psycopg.Connection, schema: str, table: str) -> None:
    """With the views dbt built over it (the next build makes them again)."""
    warehouse.execute(
        sql.SQL("drop table {}.{} cascade").format(sql.Identifier(schema), sql.Identifier(table))
    )


def _drop_for_resync(
    source: psycopg.Connection,
    warehouse: psycopg.Connection,
    settings: Settings,
    plan: TablePlan,
    marked_at: datetime,
) -> tuple[int, str | None]:
    """Drop one raw table to load it again, its deletions kept, as a full refresh does (``reset``):
    new deletes marked, then every marked row held in the transaction that drops it. Returns
    ``_mark_deletes``'s count and note."""
    if not column_types(warehouse, DATASET, plan.spec.name, plan.key):
        return 0, None  # not in raw: nothing to drop
    marked, note = (
        _mark_deletes(source, warehouse, settings, plan.spec, plan.key, marked_at)
        if plan.spec.mutable
        else (0, None)  # append-only: nothing is ever deleted, so nothing to hold
    )
    with warehouse.transaction():
        if plan.spec.mutable:
            hold_deletions(warehouse, plan.spec, plan.key)
        _drop_raw_table(warehouse, DATASET, plan.spec.name)
    return marked, note


def _forget_tables(dlt_pipeline: dlt.Pipeline, endpoints: Endpoints, names: list[str]) -> None:
    """dlt forgets tables raw no longer has: their schema (so a column dropped or renamed in
    the source is not made again) and their incremental state (so they load from their
    beginning). The load that follows creates them from what the source has now.

    dlt migrates the destination only for a schema version it has not stored there; a table
    re-inferred with the columns of a version stored before would never be created again. So
    the stored versions go too, and the next load compares every table with the database."""
    if dlt_pipeline.default_schema_name:
        schema = dlt_pipeline.default_schema
        known = [name for name in names if name in schema.tables]
        if known:
            schema.drop_tables(known)
            dlt_pipeline.schemas.save_schema(schema)
            with connect(endpoints.role_url(LOADER), purpose="warehouse") as warehouse:
                if warehouse.execute(
                    "select to_regclass(%s) is not null", (f"{DATASET}._dlt_version",)
                ).fetchone()[0]:
                    warehouse.execute(
                        sql.SQL("delete from {}._dlt_version where schema_name = %s").format(
                            sql.Identifier(DATASET)
                        ),
                        (schema.name,),
                    )
    forget_cursors(dlt_pipeline, frozenset(names))


def reset(
    settings: Settings, endpoints: Endpoints, marked_at: datetime
) -> tuple[dlt.Pipeline, dict[str, int], dict[str, str]]:
    """Forget everything loaded but the deletions: every table in raw_app (dlt's state table
    included, or the next run would restore the incremental cursors from it), then dlt's local
    working state. Returns the fresh, empty pipeline, the deletes newly marked per table, and a
    note per table whose new deletes could not be looked for.

    A deletion lives only in raw (the source no longer has the row), and the models learn of it
    from raw's mark; a reload of the source's live rows would lose it. So keys gone from the
    source since the last ingest are marked first (at ``marked_at``), and every marked row is
    held in ``raw_app_tombstones`` in the transaction that drops raw: if this is killed half way,
    raw is either whole, or gone with its deletions held. The ingest that loads a table again
    puts them back (``restore_deletions``), and a table missing from raw is always loaded from
    its beginning (``forget_cursors``)."""
    with (
        connect(endpoints.source_url, purpose="source database") as source,
        connect(endpoints.role_url(LOADER), purpose="warehouse") as warehouse,
    ):
        keys, marked, notes = {}, {}, {}
        for spec in TABLES:
            if not spec.mutable:
                continue
            plan = preflight(source, warehouse, settings.source_schema, spec, against_raw=False)
            keys[spec.name] = plan.key or spec.primary_key
            if plan.problem is None:
                marked[spec.name], note = _mark_deletes(
                    source, warehouse, settings, spec, plan.key, marked_at
                )
                if note is not None:
                    notes[spec.name] = note
        with warehouse.transaction():
            for spec in TABLES:
                if spec.mutable:
                    hold_deletions(warehouse, spec, keys[spec.name])
            tables = warehouse.execute(
                "select schemaname, tablename from pg_tables where schemaname in (%s, %s)",
                (DATASET, f"{DATASET}_staging"),
            ).fetchall()
            for schema, table in tables:
                _drop_raw_table(warehouse, schema, table)
    return pipeline(settings, endpoints).drop(), marked, notes


def _root_cause(error: BaseException) -> str:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    text = str(error).strip().splitlines()
    return text[0].rstrip(".") if text else type(error).__name__


if __name__ == "__main__":
    from haven.settings import get_settings
    from haven.warehouse.endpoints import up

    settings = get_settings()
    result = ingest(settings, up(settings), progress=print)
    print(f"loaded {result.loaded_rows:,} rows in {result.seconds:.1f} s")
