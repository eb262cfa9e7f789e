"""Whether a build has anything to do.

Every incremental model finds its own changes (macros/changes.sql), but dbt still visits every
node: about two hundred of them, several seconds even when each finds nothing. So a run first
asks the warehouse whether anything could have changed since the last complete build with the
same project files and dbt vars: a raw row loaded or marked deleted after that build started.
If nothing did (and every base view over raw is still there), the build is skipped and the run
says so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime

import psycopg
from psycopg import sql

from haven.settings import PROJECT_DIR, Settings
from haven.transform.dbt import DbtOutcome, dbt_args, dbt_environment, run_dbt
from haven.warehouse.connection import connect
from haven.warehouse.endpoints import TRANSFORMER, Endpoints
from ingestion.app.helpers import column_types
from ingestion.app.settings import DELETED_AT, TABLES

PROJECT_PARTS = ("dbt_project.yml", "models", "macros", "seeds", "tests")
"""What dbt builds from: a change to any of these files means the next run must build."""


def project_hash() -> str:
    """A digest of the project's dbt files (names and contents)."""
    digest = hashlib.sha256()
    for part in PROJECT_PARTS:
        path = PROJECT_DIR / part
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            if file.suffix in {".sql", ".yml", ".yaml", ".csv"}:
                digest.update(str(file.relative_to(PROJECT_DIR)).encode())
                digest.update(file.read_bytes())
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


def _latest_raw_change(conn: psycopg.Connection) -> datetime | None:
    """The newest load or deletion mark in raw_app (each an index lookup)."""
    marks = []
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
        marks.append(row[0] if row else None)
        if DELETED_AT in columns:
            row = conn.execute(
                sql.SQL("select max({}) from {}").format(sql.Identifier(DELETED_AT), table)
            ).fetchone()
            marks.append(row[0] if row else None)
    present = [mark for mark in marks if mark is not None]
    return max(present) if present else None


def _base_view_missing(conn: psycopg.Connection) -> bool:
    """A view of the base models over raw is gone: a raw column widened in place drops the views
    that read it (``ingestion.app.helpers.widen_columns``), and only a build makes them again."""
    row = conn.execute(
        "select count(*) from pg_views where schemaname = 'staging' and viewname = any(%s)",
        ([f"base_app__{spec.name}" for spec in TABLES],),
    ).fetchone()
    return row is None or row[0] < len(TABLES)


def nothing_to_build(
    conn: psycopg.Connection, project: str, variables: Mapping[str, object]
) -> bool:
    """True when a build of these project files, with these vars or testing everything (no
    vars), completed after the newest raw change."""
    _ensure_table(conn)
    row = conn.execute(
        "select max(started_at) from ops.builds where project_hash = %s and variables = any(%s)",
        (project, [json.dumps(dict(variables), sort_keys=True), "{}"]),
    ).fetchone()
    last_build = row[0] if row else None
    if last_build is None or _base_view_missing(conn):
        return False
    latest = _latest_raw_change(conn)
    return latest is None or latest < last_build


def build_if_changed(
    settings: Settings,
    endpoints: Endpoints,
    *,
    full_refresh: bool,
    variables: Mapping[str, object],
) -> DbtOutcome | None:
    """``dbt build`` unless nothing changed since the last complete build (then None); a build
    that succeeds is recorded. A full refresh always builds."""
    project = project_hash()
    with connect(endpoints.role_url(TRANSFORMER), purpose="warehouse") as conn:
        if not full_refresh and nothing_to_build(conn, project, variables):
            return None
    started_at = datetime.now(UTC)
    outcome = run_dbt(
        dbt_args("build", full_refresh=full_refresh, variables=variables),
        dbt_environment(settings, endpoints),
    )
    if outcome.success:
        with connect(endpoints.role_url(TRANSFORMER), purpose="warehouse") as conn:
            record_build(conn, started_at, project, variables)
    return outcome
