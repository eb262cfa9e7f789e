"""Checks and bookkeeping around the dlt extract: schema drift, the overlap window, hard deletes.

These compare the source with ``raw_app`` directly in SQL, because dlt's cursor sees neither a
changed column type before it breaks a load nor a row that no longer exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
import pyarrow as pa
from psycopg import sql
from sqlalchemy import Integer, SmallInteger
from sqlalchemy.types import TypeEngine

from ingestion.app.settings import DELETED_AT, TableSpec

TYPE_FAMILIES = {
    "smallint": "integer",
    "integer": "integer",
    "bigint": "integer",
    "numeric": "numeric",
    "real": "float",
    "double precision": "float",
    "text": "text",
    "character varying": "text",
    "character": "text",
    "boolean": "boolean",
    "date": "date",
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
    "time without time zone": "time",
    "json": "json",
    "jsonb": "json",
    "uuid": "text",
}
"""How dlt lands each PostgreSQL type: a source column may change within a family (int -> bigint,
char -> text) without breaking raw; a change across families is a breaking type change."""


@dataclass
class TablePlan:
    """What preflight decided for one table."""

    spec: TableSpec
    new_columns: list[str] = field(default_factory=list)
    problem: str | None = None
    raw_exists: bool = False
    decimals: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Source ``numeric(p, s)`` columns: connectorx hands them over as decimal(38, 10)."""


def source_columns(
    conn: psycopg.Connection, schema: str, table: str
) -> dict[str, tuple[str, bool]]:
    """``{column: (data_type, is_nullable)}`` of a source table; empty when it does not exist."""
    rows = conn.execute(
        "select column_name, data_type, is_nullable = 'YES' from information_schema.columns"
        " where table_schema = %s and table_name = %s order by ordinal_position",
        (schema, table),
    ).fetchall()
    return {name: (data_type, nullable) for name, data_type, nullable in rows}


def preflight(
    source: psycopg.Connection,
    warehouse: psycopg.Connection,
    source_schema: str,
    spec: TableSpec,
    *,
    against_raw: bool = True,
) -> TablePlan:
    """Find schema drift before extracting: new columns are reported and loaded; a missing table,
    a type change or a NULL primary key stops this table's load with the column named.

    Without ``against_raw`` (a full refresh, raw is about to be dropped) only the source is checked.
    """
    plan = TablePlan(spec)
    columns = source_columns(source, source_schema, spec.name)
    if not columns:
        plan.problem = f"source table {source_schema}.{spec.name} does not exist or is not readable"
        return plan
    if spec.primary_key not in columns:
        plan.problem = f"source table {spec.name} has no primary key column {spec.primary_key}"
        return plan
    plan.decimals = {
        name: (precision, scale)
        for name, precision, scale in source.execute(
            "select column_name, numeric_precision, numeric_scale from information_schema.columns"
            " where table_schema = %s and table_name = %s and data_type = 'numeric'"
            " and numeric_precision is not null",
            (source_schema, spec.name),
        ).fetchall()
    }
    raw = source_columns(warehouse, "raw_app", spec.name) if against_raw else {}
    plan.raw_exists = bool(raw)
    for name, (data_type, _nullable) in columns.items():
        if name not in raw:
            if raw:
                plan.new_columns.append(name)
            continue
        was, now = (
            TYPE_FAMILIES.get(raw[name][0], raw[name][0]),
            TYPE_FAMILIES.get(data_type, data_type),
        )
        if was != now:
            plan.problem = (
                f"column {spec.name}.{name} changed type from {raw[name][0]} in raw_app "
                f"to {data_type} in the source"
            )
            return plan
    if columns[spec.primary_key][1]:
        nulls = source.execute(
            sql.SQL("select count(*) from {}.{} where {} is null").format(
                sql.Identifier(source_schema),
                sql.Identifier(spec.name),
                sql.Identifier(spec.primary_key),
            )
        ).fetchone()
        if nulls and nulls[0]:
            plan.problem = f"primary key column {spec.name}.{spec.primary_key} has {nulls[0]} NULL value(s) in the source"
    return plan


def loaded_versions(
    warehouse: psycopg.Connection, spec: TableSpec, lag: timedelta
) -> pa.Table | None:
    """The (key, cursor) pairs raw already holds inside the overlap window.

    The incremental cursor re-reads ``lag`` before its last value so late commits are not missed;
    rows that come back unchanged are filtered out against these pairs, so a run with no source
    change loads nothing.
    """
    query = sql.SQL(
        "select {key}, {cursor} from raw_app.{table}"
        " where {cursor} >= (select max({cursor}) from raw_app.{table}) - %s"
    ).format(
        key=sql.Identifier(spec.primary_key),
        cursor=sql.Identifier(spec.cursor),
        table=sql.Identifier(spec.name),
    )
    with warehouse.cursor() as cursor:
        rows = cursor.execute(query, (lag,)).fetchall()
    if not rows:
        return None
    keys, cursors = zip(*rows, strict=True)
    return pa.table(
        {
            spec.primary_key: pa.array(keys, pa.int64()),
            spec.cursor: pa.array(cursors, pa.timestamp("us", tz="UTC")),
        }
    )


def drop_loaded(batch: pa.Table, loaded: pa.Table | None, spec: TableSpec) -> pa.Table:
    """``batch`` without the rows whose (key, cursor) raw already has."""
    if loaded is None or batch.num_rows == 0:
        return batch
    keys = [spec.primary_key, spec.cursor]
    probe = (
        batch.select(keys)
        .cast(loaded.schema)
        .append_column("_row", pa.array(range(batch.num_rows)))
    )
    fresh = probe.join(loaded, keys=keys, join_type="left anti")
    return (
        batch.take(fresh.column("_row").combine_chunks().sort())
        if fresh.num_rows < batch.num_rows
        else batch
    )


def key_fingerprint_sql(
    key: sql.Composable, relation: sql.Composable, where: sql.Composable | None = None
) -> sql.Composed:
    """count and order-free hash sum of the keys: equal on both sides means the key sets agree
    (a collision needs two different key sets with the same 64-bit hash sum and count)."""
    query = sql.SQL(
        "select count(*), coalesce(sum(hashint8({key})::numeric), 0) from {relation}"
    ).format(key=key, relation=relation)
    return query + sql.SQL(" where ") + where if where is not None else query


def detect_deletes(
    source: psycopg.Connection,
    warehouse: psycopg.Connection,
    source_schema: str,
    spec: TableSpec,
    load_started: datetime,
) -> int:
    """Mark raw rows whose key is gone from the source; return how many were newly marked.

    A cheap fingerprint of both key sets decides whether anything was deleted at all; only then
    are the source keys copied to the warehouse (binary COPY) and anti-joined.
    """
    key = sql.Identifier(spec.primary_key)
    raw = sql.SQL("raw_app.{}").format(sql.Identifier(spec.name))
    live = sql.SQL("{} is null").format(sql.Identifier(DELETED_AT))
    source_relation = sql.SQL("{}.{}").format(
        sql.Identifier(source_schema), sql.Identifier(spec.name)
    )
    warehouse.execute(
        sql.SQL("alter table {} add column if not exists {} timestamptz").format(
            raw, sql.Identifier(DELETED_AT)
        )
    )
    source_print = source.execute(key_fingerprint_sql(key, source_relation)).fetchone()
    raw_print = warehouse.execute(key_fingerprint_sql(key, raw, live)).fetchone()
    if source_print == raw_print:
        return 0
    with warehouse.transaction():
        warehouse.execute(
            "create temporary table source_keys (id bigint primary key) on commit drop"
        )
        with (
            source.cursor().copy(
                sql.SQL("copy (select {} from {}) to stdout (format binary)").format(
                    key, source_relation
                )
            ) as out,
            warehouse.cursor().copy("copy source_keys from stdin (format binary)") as into,
        ):
            for chunk in out:
                into.write(chunk)
        marked = warehouse.execute(
            sql.SQL(
                "update {raw} as r set {deleted} = %s where r.{deleted} is null"
                " and not exists (select from source_keys as s where s.id = r.{key})"
            ).format(raw=raw, deleted=sql.Identifier(DELETED_AT), key=key),
            (load_started,),
        )
        return marked.rowcount


def widen_small_integers(sql_type: TypeEngine) -> TypeEngine | None:
    """Reflect ``smallint`` as ``integer``: dlt would create it as ``integer`` in raw but hand
    the loader 16-bit data, and the binary COPY behind parquet loading needs both to match."""
    return Integer() if isinstance(sql_type, SmallInteger) else None


def restore_decimals(batch: pa.Table, decimals: dict[str, tuple[int, int]]) -> pa.Table:
    """Cast decimal columns back to the source's precision and scale, so raw gets the same
    ``numeric(p, s)`` column (and the same text form of every value) as the source."""
    for name, (precision, scale) in decimals.items():
        index = batch.schema.get_field_index(name)
        if index >= 0:
            target = pa.decimal128(precision, scale)
            batch = batch.set_column(
                index, batch.schema.field(index).with_type(target), batch.column(index).cast(target)
            )
    return batch
