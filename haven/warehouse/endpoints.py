"""Where the warehouse and the source are: a configured server, or the embedded one started here.

``up()`` is the one place that decides; everything downstream takes the ``Endpoints`` it returns,
so the same code path runs against the embedded server and a real one.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

from haven.errors import HavenError
from haven.settings import Settings
from haven.warehouse.connection import connect, validate_url, with_database, with_user
from haven.warehouse.embedded import HOST, SUPERUSER, EmbeddedServer

LOADER = "haven_loader"
TRANSFORMER = "haven_transformer"
ANALYST = "haven_analyst"
ML = "haven_ml"
MCP = "haven_mcp"
ROLES = (LOADER, TRANSFORMER, ANALYST, ML, MCP)
"""The platform's roles in the warehouse (haven/warehouse/roles.sql)."""
SOURCE_READER = "haven_source_reader"
"""The read-only role the pipeline uses on the simulated source."""
EMBEDDED_ROLE_PASSWORD = "haven-local"
"""The embedded server trusts 127.0.0.1 and ignores passwords, but some clients (dlt) insist on
one; on a real server HAVEN_ROLE_PASSWORD is used instead."""


@dataclass(frozen=True)
class Endpoints:
    warehouse_url: str
    """Administrative URL of the warehouse database (applies roles; tests and benchmarks)."""
    source_admin_url: str
    """URL the simulator writes the application database with (the application's own role)."""
    source_url: str
    """URL the pipeline reads the source with: a read-only role."""
    embedded: bool
    role_password: str | None = None

    def role_url(self, role: str) -> str:
        """The warehouse, logged in as one of the platform roles."""
        return with_user(self.warehouse_url, role, self.role_password)


def embedded_server(settings: Settings) -> EmbeddedServer:
    return EmbeddedServer(settings.embedded_dir)


def uses_embedded_server(settings: Settings) -> bool:
    """The embedded server holds the warehouse or the source (one of the URLs is not set)."""
    return settings.warehouse_url is None or settings.source_url is None


def up(settings: Settings) -> Endpoints:
    """Make the warehouse and the source reachable and return their URLs. Idempotent."""
    port: int | None = None
    if uses_embedded_server(settings):
        port = embedded_server(settings).start()
    role_password = settings.role_password or (EMBEDDED_ROLE_PASSWORD if port else None)
    embedded_root = (
        f"postgresql://{SUPERUSER}:{EMBEDDED_ROLE_PASSWORD}@{HOST}:{port}/postgres"
        if port
        else None
    )

    if settings.warehouse_url is not None:
        validate_url(settings.warehouse_url, setting="HAVEN_WAREHOUSE_URL")
        warehouse_url = settings.warehouse_url
    else:
        assert embedded_root is not None
        _ensure_database(embedded_root, settings.warehouse_database)
        warehouse_url = with_database(embedded_root, settings.warehouse_database)

    if settings.source_url is not None:
        validate_url(settings.source_url, setting="HAVEN_SOURCE_URL")
        source_admin_url = source_url = settings.source_url
    else:
        assert embedded_root is not None
        _ensure_database(embedded_root, settings.source_database)
        source_admin_url = with_database(embedded_root, settings.source_database)
        source_url = with_user(source_admin_url, SOURCE_READER, role_password)

    endpoints = Endpoints(
        warehouse_url=warehouse_url,
        source_admin_url=source_admin_url,
        source_url=source_url,
        embedded=settings.warehouse_url is None,
        role_password=role_password,
    )
    apply_roles(endpoints, settings.reporting_time_zone)
    return endpoints


def apply_roles(endpoints: Endpoints, time_zone: str = "UTC") -> None:
    """Create the platform roles and their grants in the warehouse (``roles.sql``), one
    process at a time: two commands starting together would otherwise update the same role
    rows at once, which PostgreSQL refuses ("tuple concurrently updated").

    Each role's sessions in this database run in ``time_zone`` (the reporting zone), whatever
    the server's or the database's default: a date derived from a timestamptz depends on it."""
    script = resources.files("haven.warehouse").joinpath("roles.sql").read_text()
    with connect(endpoints.warehouse_url, purpose="warehouse") as conn:
        problem = warehouse_role_problem(conn)
        if problem is not None:
            raise HavenError(problem)
        try:
            # held until the connection closes
            conn.execute("select pg_advisory_lock(hashtext('haven.apply_roles'))")
            conn.execute(script)  # type: ignore[arg-type]  # a trusted script of our own
            for role in ROLES:
                conn.execute(
                    sql.SQL("alter role {} in database {} set timezone = {}").format(
                        sql.Identifier(role),
                        sql.Identifier(conn.info.dbname),
                        sql.Literal(time_zone),
                    )
                )
            if endpoints.role_password:
                for role in ROLES:
                    conn.execute(
                        sql.SQL("alter role {} password {}").format(
                            sql.Identifier(role), sql.Literal(endpoints.role_password)
                        )
                    )
        except psycopg.Error as error:
            raise HavenError(
                f"Could not create the haven roles in the warehouse ({str(error).splitlines()[0]}); "
                "HAVEN_WAREHOUSE_URL needs a role with CREATEROLE that owns the database."
            ) from None


def warehouse_role_problem(conn: psycopg.Connection) -> str | None:
    """Before roles.sql: what the warehouse role lacks to apply it, as one sentence (None when
    it can): a superuser, or CREATEROLE and the database's owner, and on PostgreSQL 16+ the
    ADMIN OPTION on haven roles that exist already (a creator gets it; another role's roles
    need it granted)."""
    row = conn.execute(
        "select r.rolname, r.rolsuper, r.rolcreaterole,"
        " pg_has_role(r.oid, d.datdba, 'USAGE'), d.datname,"
        " current_setting('server_version_num')::integer"
        " from pg_roles as r, pg_database as d"
        " where r.rolname = current_user and d.datname = current_database()"
    ).fetchone()
    assert row is not None
    user, is_superuser, can_create_roles, owns_database, database, version = row
    if is_superuser:
        return None
    if not can_create_roles or not owns_database:
        return (
            f"The warehouse role {user} needs CREATEROLE and must own the database {database}:"
            f" as an administrator run `alter role {user} createrole` and"
            f" `alter database {database} owner to {user}`."
        )
    if version >= 160000:
        unmanaged = conn.execute(
            "select r.rolname from pg_roles as r"
            " where r.rolname = any(%s) and not exists (select from pg_auth_members as m"
            " where m.roleid = r.oid and m.member = (select oid from pg_roles"
            " where rolname = current_user) and m.admin_option) order by 1",
            (list(ROLES),),
        ).fetchall()
        if unmanaged:
            names = ", ".join(name for (name,) in unmanaged)
            return (
                f"The warehouse role {user} may not manage the existing role(s) {names}"
                " (created by another role; PostgreSQL 16+ needs the ADMIN OPTION): as their"
                f" creator or a superuser run `grant {unmanaged[0][0]} to {user} with admin"
                " option` for each."
            )
    return None


def _ensure_database(root_url: str, name: str) -> None:
    with connect(root_url, purpose="embedded warehouse") as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
