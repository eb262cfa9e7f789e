"""Hard deletes are found whatever the primary key's type: insert, ingest, delete, ingest, and raw
marks the row deleted and equals the source (the bug was a bigint-only key copy)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from haven.source import simulator
from haven.warehouse.fingerprint import table_fingerprint
from ingestion.app.helpers import primary_key, source_columns
from ingestion.app.settings import DELETED_AT, TableSpec
from ingestion.pipeline import ingest

KEY_TYPES = {
    "smallint": ("id smallint primary key", "id", "(1), (2), (3)"),
    "integer": ("id integer primary key", "id", "(1), (2), (3)"),
    "bigint": ("id bigint primary key", "id", "(5000000000), (5000000001), (5000000002)"),
    "uuid": (
        "id uuid primary key",
        "id",
        "('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), ('b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12'),"
        " ('c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13')",
    ),
    "text": ("code text primary key", "code", "('alpha'), ('beta'), ('gamma|with, odd \"chars\"')"),
    "composite": (
        "order_id bigint, line smallint, primary key (order_id, line)",
        "order_id, line",
        "(1, 1), (1, 2), (2, 1)",
    ),
    "undeclared": ("id integer not null", "id", "(7), (8), (9)"),
}


@pytest.fixture(scope="module")
def source_env(module_env):
    """An initialised source (its read-only role exists), to which each test adds a table."""
    simulator.init(module_env[1], scale=0.01, seed=3, replace=True)
    return module_env


@pytest.mark.parametrize("key_type", list(KEY_TYPES))
def test_hard_delete_is_detected_for_every_key_type(source_env, key_type: str) -> None:
    settings, endpoints = source_env
    table = f"keys_{key_type}"
    definition, key_columns, rows = KEY_TYPES[key_type]
    with psycopg.connect(endpoints.source_admin_url, autocommit=True) as source:
        source.execute(sql.SQL(f"drop table if exists {table}"))
        source.execute(
            sql.SQL(
                f"create table {table} ({definition}, label text,"
                " updated_at timestamptz not null default now())"
            )
        )
        source.execute(sql.SQL(f"insert into {table} ({key_columns}) values {rows}"))
        source.execute(f"grant select on {table} to public")
    spec = TableSpec(table, primary_key=("id",))
    first = ingest(settings, endpoints, tables=(spec,))
    assert not first.failed, first.failed
    assert first.tables[table].loaded == 3

    with psycopg.connect(endpoints.source_admin_url, autocommit=True) as source:
        key = primary_key(source, "public", table) or spec.primary_key
        deleted = source.execute(
            sql.SQL(
                f"delete from {table} where ({key_columns}) in (select {key_columns} "
                f"from {table} order by {key_columns} limit 1) returning {key_columns}"
            )
        ).fetchall()
        columns = list(source_columns(source, "public", table))
        expected = table_fingerprint(source, "public", table, columns, key=key)
    second = ingest(settings, endpoints, tables=(spec,))
    assert not second.failed, second.failed
    assert second.tables[table].deleted == 1

    with psycopg.connect(endpoints.warehouse_url) as raw:
        marked = raw.execute(
            sql.SQL(f"select {key_columns} from raw_app.{table} where {DELETED_AT} is not null")
        ).fetchall()
        live = table_fingerprint(
            raw,
            "raw_app",
            table,
            columns,
            key=key,
            where=sql.SQL("{} is null").format(sql.Identifier(DELETED_AT)),
        )
    assert [tuple(str(v) for v in row) for row in marked] == [
        tuple(str(v) for v in row) for row in deleted
    ]
    assert live == expected

    third = ingest(settings, endpoints, tables=(spec,))
    assert not third.failed and third.loaded_rows == 0 and third.tables[table].deleted == 0

    # a value changed without updated_at: the value check finds the key and the repair reads
    # it again by key, whatever the key's type (a uuid, odd text, several columns)
    with psycopg.connect(endpoints.source_admin_url, autocommit=True) as source:
        source.execute(
            sql.SQL(
                f"update {table} set label = 'changed' where ({key_columns}) in (select"
                f" {key_columns} from {table} order by {key_columns} desc limit 1)"
            )
        )
    repaired = ingest(settings, endpoints, tables=(spec,), values="all", repair=True)
    check = repaired.tables[table].values
    assert check is not None and check.repaired == 1 and not check.differing, check
    with psycopg.connect(endpoints.warehouse_url) as raw:
        assert raw.execute(
            sql.SQL(f"select count(*) from raw_app.{table} where label = 'changed'")
        ).fetchone() == (1,)
