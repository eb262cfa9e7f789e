"""Raw tables taken away and brought back whole: a full refresh, a re-sync of one table, and
what an interrupted ingest left half done. Every path keeps raw's deletions: a deletion exists
nowhere else (the source no longer has the row), so marked rows are held in
``raw_app_tombstones`` while a table is away and put back when it lands again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import dlt
import psycopg
from dlt.extract.state import reset_resource_state
from dlt.pipeline.exceptions import PipelineStepFailed
from psycopg import sql

from haven.errors import HavenError, root_cause
from haven.settings import Settings
from haven.warehouse.connection import connect
from haven.warehouse.endpoints import LOADER, Endpoints
from ingestion.app.helpers import (
    TablePlan,
    column_types,
    detect_deletes,
    hold_deletions,
    preflight,
)
from ingestion.app.settings import DATASET, PIPELINE_NAME, TABLES, TableSpec

Progress = Callable[[str], None]


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
                f"ingest: {root_cause(error)}."
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


def mark_deletes(
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
            f" again ({root_cause(error)}); earlier deletion marks were kept"
        )


def drop_raw_table(warehouse: psycopg.Connection, schema: str, table: str) -> None:
    """With the views dbt built over it (the next build makes them again)."""
    warehouse.execute(
        sql.SQL("drop table {}.{} cascade").format(sql.Identifier(schema), sql.Identifier(table))
    )


def drop_for_resync(
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
        mark_deletes(source, warehouse, settings, plan.spec, plan.key, marked_at)
        if plan.spec.mutable
        else (0, None)  # append-only: nothing is ever deleted, so nothing to hold
    )
    with warehouse.transaction():
        if plan.spec.mutable:
            hold_deletions(warehouse, plan.spec, plan.key)
        drop_raw_table(warehouse, DATASET, plan.spec.name)
    return marked, note


def forget_tables(dlt_pipeline: dlt.Pipeline, endpoints: Endpoints, names: list[str]) -> None:
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
) -> tuple[dict[str, int], dict[str, str]]:
    """Forget everything loaded but the deletions: every table in raw_app (dlt's state table
    included, or the next run would restore the incremental cursors from it), then dlt's local
    working state (the caller drops the pipeline's local state: ``dlt.Pipeline.drop``). Returns
    the deletes newly marked per table, and a note per table whose new deletes could not be
    looked for.

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
                marked[spec.name], note = mark_deletes(
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
                drop_raw_table(warehouse, schema, table)
    return marked, notes
