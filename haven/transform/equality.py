"""Is an incrementally built warehouse the same as a full rebuild of the same raw data?

A reference database on the same server keeps its own history: it starts as a copy of the
warehouse, and before each comparison it receives the warehouse's raw_app and rebuilds every
model from it with ``--full-refresh``, its SCD2 histories compared over whole tables as dbt's
snapshot does (``snapshot_whole_table``).
Then every relation the transforms build is compared by row count and a checksum over all of its
columns, and every snapshot by its SCD2 history.
"""

from __future__ import annotations

import subprocess

import psycopg
from psycopg import sql

from haven.errors import HavenError
from haven.settings import Settings
from haven.warehouse.connection import copy_database
from haven.warehouse.embedded import BIN_DIRECTORY
from haven.warehouse.endpoints import Endpoints
from haven.warehouse.fingerprint import Fingerprint, table_fingerprint

TRANSFORMED_SCHEMAS = ("staging", "quarantine", "analytics", "ml")
VOLATILE_COLUMNS = frozenset({"quarantined_at"})
"""Columns a build stamps with its own clock; they differ between any two builds."""

IN_UTC = "-c TimeZone=UTC"
"""The comparisons read timestamptz values as text: in one zone for both databases, whatever
each database's default (a warehouse may run in another)."""

REFERENCE_EXCLUDES = "resource_type:test resource_type:unit_test"
"""The reference is rebuilt without the data and unit tests: it is only compared. The warehouse's
own builds run them; here they were half of every rebuild's nodes, and a failing one would skip
the models below it and report a difference that is not one."""

SNAPSHOT_TIMES = ("dbt_scd_id", "dbt_updated_at", "dbt_valid_from", "dbt_valid_to")


def database_url(url: str, database: str) -> str:
    """The same server and credentials, another database."""
    return psycopg.conninfo.make_conninfo(url, dbname=database)


def create_reference(endpoints: Endpoints, reference: str) -> None:
    """A new reference database, a copy of the warehouse as it is now."""
    copy_database(endpoints.warehouse_url, reference)


def copy_raw(endpoints: Endpoints, reference: str) -> None:
    """Replace the reference's raw_app with the warehouse's (pg_dump piped into psql); the views
    over it go too, and the full rebuild that follows makes them again."""
    with psycopg.connect(database_url(endpoints.warehouse_url, reference), autocommit=True) as conn:
        conn.execute("drop schema if exists raw_app cascade")
    dump = subprocess.run(
        [
            str(BIN_DIRECTORY / "pg_dump"),
            "--schema=raw_app",
            f"--dbname={endpoints.warehouse_url}",
        ],
        capture_output=True,
        check=False,
    )
    if dump.returncode != 0:
        raise HavenError(f"pg_dump of raw_app failed: {dump.stderr.decode().strip()}")
    restore = subprocess.run(
        [
            str(BIN_DIRECTORY / "psql"),
            "--quiet",
            "--no-psqlrc",
            "--set=ON_ERROR_STOP=1",
            f"--dbname={database_url(endpoints.warehouse_url, reference)}",
        ],
        input=dump.stdout,
        capture_output=True,
        check=False,
    )
    if restore.returncode != 0:
        raise HavenError(
            f"loading raw_app into {reference} failed: {restore.stderr.decode().strip()}"
        )


def _columns(conn: psycopg.Connection, schema: str, table: str) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            "select column_name from information_schema.columns"
            " where table_schema = %s and table_name = %s order by ordinal_position",
            (schema, table),
        )
    ]


def _tables(conn: psycopg.Connection, schemas: tuple[str, ...]) -> list[tuple[str, str]]:
    """The tables (views are queries over tables that are compared, or over raw_app)."""
    return [
        (row[0], row[1])
        for row in conn.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_schema = any(%s) and table_type = 'BASE TABLE' order by 1, 2",
            (list(schemas),),
        )
    ]


def transformed_fingerprints(url: str) -> dict[str, Fingerprint]:
    """Every table in the transformed schemas: rows and a checksum over all of its columns
    but the volatile ones, rows in the order of their text (no key needed)."""
    with psycopg.connect(url, options=IN_UTC) as conn:
        result = {}
        for schema, table in _tables(conn, TRANSFORMED_SCHEMAS):
            columns = [c for c in _columns(conn, schema, table) if c not in VOLATILE_COLUMNS]
            result[f"{schema}.{table}"] = table_fingerprint(
                conn, schema, table, columns, key=tuple(columns)
            )
        return result


def snapshot_histories(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every snapshot's SCD2 history, with the times a snapshot run stamps from its own clock
    masked: a deletion's validity starts (and the version it closes ends) when the run that saw
    it happened, which differs between two runs that saw the same delete. Everything else (the
    key, the columns, valid_from and valid_to of every update, which rows are deletions) must
    be equal. The key is the snapshot's first column."""
    with psycopg.connect(url, options=IN_UTC) as conn:
        result = {}
        for schema, table in _tables(conn, ("snapshots",)):
            columns = _columns(conn, schema, table)
            key = sql.Identifier(columns[0])
            kept = [sql.Identifier(c) for c in columns if c not in SNAPSHOT_TIMES]
            query = sql.SQL(
                "select {kept},"
                " case when dbt_is_deleted = 'True' then null else dbt_valid_from end,"
                " case when lead(dbt_is_deleted) over versions = 'True' then null else dbt_valid_to end"
                " from {schema}.{table}"
                " window versions as (partition by {key} order by dbt_valid_from)"
                " order by {key}, dbt_valid_from"
            ).format(
                kept=sql.SQL(", ").join(kept),
                schema=sql.Identifier(schema),
                table=sql.Identifier(table),
                key=key,
            )
            result[f"{schema}.{table}"] = [tuple(row) for row in conn.execute(query)]
        return result


def differences(incremental: dict[str, object], reference: dict[str, object]) -> list[str]:
    """The relations that differ, one line each (empty when equal)."""
    lines = []
    for name in sorted(set(incremental) | set(reference)):
        if name not in incremental or name not in reference:
            lines.append(f"{name}: only in {'reference' if name in reference else 'incremental'}")
        elif incremental[name] != reference[name]:
            left, right = incremental[name], reference[name]
            if isinstance(left, list) and isinstance(right, list):
                lines.append(f"{name}: {len(left)} versions, reference {len(right)}")
            else:
                lines.append(f"{name}: {left}, reference {right}")
    return lines


def differences_from_full_rebuild(
    settings: Settings, endpoints: Endpoints, reference: str
) -> list[str]:
    """Give the reference the warehouse's raw data, rebuild every model and history there with
    ``--full-refresh`` (histories over whole tables, as dbt's snapshot; no tests), and list every
    table and history that differs from the warehouse (empty: the incremental build is exact).

    The rebuild writes its artifacts under ``target/<reference>``: ``target/`` keeps the
    warehouse's own run results and manifest, and each database keeps its own partial parse
    (one shared target dir made dbt parse the whole project again at every switch)."""
    from haven.transform.dbt import dbt_args, dbt_environment, run_dbt

    copy_raw(endpoints, reference)
    environment = dbt_environment(settings, endpoints)
    environment["HAVEN_DBT_DATABASE"] = reference
    environment["DBT_TARGET_PATH"] = str(settings.dbt_target_dir / reference)
    outcome = run_dbt(
        dbt_args(
            "build",
            exclude=REFERENCE_EXCLUDES,
            full_refresh=True,
            variables={"snapshot_whole_table": True},
        ),
        environment,
    )
    if not outcome.success:
        names = ", ".join(node.name for node in outcome.failures[:5])
        raise HavenError(f"the full rebuild in {reference} failed: {names or outcome.error}.")
    reference_url = database_url(endpoints.warehouse_url, reference)
    return differences(
        transformed_fingerprints(endpoints.warehouse_url), transformed_fingerprints(reference_url)
    ) + differences(snapshot_histories(endpoints.warehouse_url), snapshot_histories(reference_url))
