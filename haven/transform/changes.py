"""What a run's build covers.

Every incremental model finds its own changes (macros/changes.sql), but dbt still visits every
node it is given: about two hundred of them, several seconds even when each finds nothing. So a
run first asks the warehouse which raw tables could have changed since the last complete build
with the same project files and dbt vars: a raw row loaded or marked deleted after that build
started. If none did (and every base view over raw is still there), the build is skipped and the
run says so; otherwise an incremental run builds and tests only the part of the DAG below the
tables that changed (``plan_build``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg import sql

from haven.settings import PROJECT_DIR, Settings
from haven.transform.dbt import DbtOutcome, dbt_args, dbt_environment, run_dbt
from haven.warehouse.connection import connect
from haven.warehouse.endpoints import TRANSFORMER, Endpoints
from ingestion.app.helpers import column_types
from ingestion.app.settings import DELETED_AT, TABLES

SOURCE = "app"
"""The dbt source that names the raw_app tables (models/staging/app)."""

UNIT_TESTS = "resource_type:unit_test"

PROJECT_PARTS = ("dbt_project.yml", "models", "macros", "seeds", "tests")
"""What dbt builds from: a change to any of these files means the next run must build."""


PROJECT_ENVIRONMENT = ("HAVEN_REPORTING_TIME_ZONE",)
"""The environment variables the project reads (dbt_project.yml's vars): a change to one is a
change to the project."""


def project_hash(environment: Mapping[str, str]) -> str:
    """A digest of the project's dbt files (names and contents) and of the environment variables
    it reads, from ``environment`` (the one dbt runs with)."""
    digest = hashlib.sha256()
    for part in PROJECT_PARTS:
        path = PROJECT_DIR / part
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            if file.suffix in {".sql", ".yml", ".yaml", ".csv"}:
                digest.update(str(file.relative_to(PROJECT_DIR)).encode())
                digest.update(file.read_bytes())
    for name in PROJECT_ENVIRONMENT:
        digest.update(f"{name}={environment.get(name, '')}".encode())
    return digest.hexdigest()


def _ensure_table(conn: psycopg.Connection) -> None:
    conn.execute(
        "create table if not exists ops.builds ("
        " started_at timestamptz not null,"
        " project_hash text not null,"
        " variables text not null)"
    )


def record_build(
    conn: psycopg.Connection, started_at: datetime, project: str, variables: Mapping[str, object]
) -> None:
    """Remember a build that completed: every model absorbed the changes before ``started_at``."""
    _ensure_table(conn)
    conn.execute(
        "insert into ops.builds (started_at, project_hash, variables) values (%s, %s, %s)",
        (started_at, project, json.dumps(dict(variables), sort_keys=True)),
    )


def _latest_raw_changes(conn: psycopg.Connection) -> dict[str, datetime | None]:
    """Each raw_app table's newest load or deletion mark (each an index lookup); None for a
    table with no rows, and no entry for a table not landed yet."""
    latest: dict[str, datetime | None] = {}
    for spec in TABLES:
        columns = column_types(conn, "raw_app", spec.name, ("_dlt_load_id", DELETED_AT))
        if not columns:
            continue
        table = sql.SQL("raw_app.{}").format(sql.Identifier(spec.name))
        row = conn.execute(
            sql.SQL(
                "select to_timestamp(max(_dlt_load_id::numeric)::double precision) from {}"
            ).format(table)
        ).fetchone()
        marks = [row[0] if row else None]
        if DELETED_AT in columns:
            row = conn.execute(
                sql.SQL("select max({}) from {}").format(sql.Identifier(DELETED_AT), table)
            ).fetchone()
            marks.append(row[0] if row else None)
        present = [mark for mark in marks if mark is not None]
        latest[spec.name] = max(present) if present else None
    return latest


def _base_view_missing(conn: psycopg.Connection) -> bool:
    """A view of the base models over raw is gone: a raw column widened in place drops the views
    that read it (``ingestion.app.helpers.widen_columns``), and only a build makes them again."""
    row = conn.execute(
        "select count(*) from pg_views where schemaname = 'staging' and viewname = any(%s)",
        ([f"base_app__{spec.name}" for spec in TABLES],),
    ).fetchone()
    return row is None or row[0] < len(TABLES)


@dataclass(frozen=True)
class BuildPlan:
    """What a run's ``dbt build`` covers."""

    select: str | None
    """dbt's --select: the raw tables that changed and everything below them; None for the
    whole project."""
    reason: str
    """Why, in a few words, for the run's output."""
    exclude: str | None = None
    """dbt's --exclude: the unit tests, in a part built with the project files of a complete
    build (which ran them: they read fixtures, not the warehouse)."""


def below(tables: list[str]) -> str:
    """dbt's selector of the part of the DAG below these raw tables."""
    return " ".join(f"source:{SOURCE}.{table}+" for table in tables)


def plan_build(
    conn: psycopg.Connection,
    project: str,
    variables: Mapping[str, object],
    *,
    full_refresh: bool = False,
) -> BuildPlan | None:
    """What to build, or None when nothing changed since the last complete build of these
    project files with these vars (or testing everything: no vars).

    An incremental run (its vars test only the rows it wrote) builds the part of the DAG below
    the raw tables with a load or a deletion mark after that build started: every model was
    complete as of that build, and a model below none of those tables has had no new input
    since (its other inputs, seeds and vars, are the project hash and the vars; the clock only
    stamps validity). Its unit tests are left out: they read fixtures, and the complete build
    of the same files ran them. Everything is built on a full refresh, when the project files
    or the vars changed, when a base view over raw is gone (a widened raw column dropped it),
    on the first build, and in a run that tests everything (the nightly deployment).
    """
    if full_refresh:
        return BuildPlan(None, "a full refresh")
    _ensure_table(conn)
    row = conn.execute(
        "select max(started_at) from ops.builds where project_hash = %s and variables = any(%s)",
        (project, [json.dumps(dict(variables), sort_keys=True), "{}"]),
    ).fetchone()
    last_build = row[0] if row else None
    if last_build is None:
        return BuildPlan(None, "no complete build of these project files yet")
    if _base_view_missing(conn):
        return BuildPlan(None, "a view over raw must be made again")
    changed = sorted(
        table
        for table, latest in _latest_raw_changes(conn).items()
        if latest is not None and latest >= last_build
    )
    if not changed:
        return None
    if not variables:
        return BuildPlan(None, "every row tested (the nightly run)")
    return BuildPlan(
        below(changed),
        f"below the raw tables that changed: {', '.join(changed)}",
        exclude=UNIT_TESTS,
    )


def build_if_changed(
    settings: Settings,
    endpoints: Endpoints,
    *,
    full_refresh: bool,
    variables: Mapping[str, object],
    progress: Callable[[str], None] = lambda _: None,
) -> DbtOutcome | None:
    """``dbt build`` of what ``plan_build`` says (None when nothing changed); a build that
    succeeds is recorded. ``progress`` hears what is built and why."""
    environment = dbt_environment(settings, endpoints)
    project = project_hash(environment)
    with connect(endpoints.role_url(TRANSFORMER), purpose="warehouse") as conn:
        plan = plan_build(conn, project, variables, full_refresh=full_refresh)
    if plan is None:
        return None
    progress(
        f"dbt build {'of everything' if plan.select is None else 'of the part'}: {plan.reason}"
    )
    started_at = datetime.now(UTC)
    outcome = run_dbt(
        dbt_args(
            "build",
            select=plan.select,
            exclude=plan.exclude,
            full_refresh=full_refresh,
            variables=variables,
        ),
        environment,
    )
    if outcome.success:
        with connect(endpoints.role_url(TRANSFORMER), purpose="warehouse") as conn:
            record_build(conn, started_at, project, variables)
    return outcome
