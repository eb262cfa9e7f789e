"""What a run will need, checked by ``haven up`` before it says all is well.

On the embedded server everything is given; on a configured one (a managed service, where no role
is superuser) a gap would otherwise surface minutes later, in the middle of a run. Each gap is
one sentence naming the privilege, setting or variable and how to give it. A *problem* stops a
run (``haven up`` exits non-zero); a *warning* weakens a guarantee the run does not depend on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from haven.settings import Settings
from haven.warehouse.connection import connect
from haven.warehouse.endpoints import MCP, Endpoints
from haven.warehouse.pii import MISSING_KEY

MCP_TEMP_FILE_LIMIT = "256MB"
"""What roles.sql gives the MCP role where the warehouse role may set it."""


@dataclass
class Readiness:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check(settings: Settings, endpoints: Endpoints) -> Readiness:
    """Every gap ``haven up`` can see between this configuration and a run that succeeds."""
    readiness = Readiness()
    if not endpoints.embedded and settings.pii_hash_key is None:
        readiness.problems.append(MISSING_KEY)
    with connect(endpoints.warehouse_url, purpose="warehouse") as warehouse:
        readiness.warnings.extend(warehouse_warnings(warehouse))
    if settings.source_url is not None:
        with connect(endpoints.source_url, purpose="source database") as source:
            _check_source(source, settings.source_schema, readiness)
    return readiness


def warehouse_warnings(conn: psycopg.Connection) -> list[str]:
    """The guarantees of roles.sql that the warehouse role could not give (it may not set a
    superuser-only setting, or does not own schema public before PostgreSQL 15)."""
    warnings = []
    settings = conn.execute(
        "select coalesce(array_agg(c), '{}') from pg_db_role_setting as s"
        " join pg_roles as r on r.oid = s.setrole cross join unnest(s.setconfig) as c"
        " where r.rolname = %s and s.setdatabase in (0, (select oid from pg_database"
        " where datname = current_database()))",
        (MCP,),
    ).fetchone()
    if not any(item.startswith("temp_file_limit=") for item in (settings[0] if settings else [])):
        warnings.append(
            f"The MCP role {MCP} has no temp_file_limit (only a superuser may set it): run"
            f" `alter role {MCP} set temp_file_limit = '{MCP_TEMP_FILE_LIMIT}'` as one, or set"
            " temp_file_limit in the service's parameter group; until then only its"
            " statement_timeout stops a query that spills to disk."
        )
    public = conn.execute("select has_schema_privilege(%s, 'public', 'CREATE')", (MCP,)).fetchone()
    if public and public[0]:
        warnings.append(
            "Every role may create tables in schema public (PostgreSQL before 15, and the"
            " warehouse role does not own it): run `revoke create on schema public from public`"
            " as its owner."
        )
    return warnings


def _check_source(source: psycopg.Connection, schema: str, readiness: Readiness) -> None:
    """The source role reads every application table (the ones that exist: ``haven source
    init`` may not have run yet). Only with a configured source: the table list's package
    imports dlt, seconds that ``haven up`` on the embedded server does not need to spend."""
    from ingestion.app.settings import TABLES

    rows = source.execute(
        "select c.relname, has_table_privilege(c.oid, 'SELECT') from pg_class as c"
        " join pg_namespace as n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relname = any(%s) and c.relkind in ('r', 'p', 'v')",
        (schema, [spec.name for spec in TABLES]),
    ).fetchall()
    user = source.info.user
    unreadable = sorted(name for name, readable in rows if not readable)
    if unreadable:
        readiness.problems.append(
            f"The source role {user} cannot read {schema}.{unreadable[0]}"
            f"{f' and {len(unreadable) - 1} more table(s)' if len(unreadable) > 1 else ''}:"
            f" as the tables' owner run `grant select on all tables in schema {schema} to {user}`."
        )
    missing = sorted({spec.name for spec in TABLES} - {name for name, _ in rows})
    if missing and len(missing) < len(TABLES):
        readiness.warnings.append(
            f"The source has no table {schema}.{missing[0]}"
            f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}: those tables will"
            " not be ingested."
        )
    elif missing:
        readiness.warnings.append(
            f"The source has no application tables in schema {schema} yet: `haven source init`"
            " creates simulated ones, or point HAVEN_SOURCE_URL at the application's database."
        )
