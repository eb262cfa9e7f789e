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

from ingestion.app.settings import DELETED_AT, TOMBSTONES, TableSpec

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


OWN_COLUMNS = ("_dlt_", "_haven_")
"""Columns raw has that the source never had: dlt's load columns and the deletion mark."""


@dataclass
class TablePlan:
    """What preflight decided for one table."""

    spec: TableSpec
    new_columns: list[str] = field(default_factory=list)
    problem: str | None = None
    raw_exists: bool = False
    key: tuple[str, ...] = ()
    """The primary key columns, from the source's catalog (the spec's declared key otherwise)."""
    decimals: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Source ``numeric(p, s)`` columns: connectorx hands them over as decimal(38, 10)."""
    widened: dict[str, str] = field(default_factory=dict)
    """Raw columns to widen to the source's wider type before loading (``widen_columns``)."""


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
    plan.key = primary_key(source, source_schema, spec.name) or spec.primary_key
    missing = [name for name in plan.key if name not in columns]
    if missing:
        plan.problem = f"source table {spec.name} has no primary key column {', '.join(missing)}"
        return plan
    plan.decimals = _decimals(source, source_schema, spec.name)
    raw = source_columns(warehouse, "raw_app", spec.name) if against_raw else {}
    plan.raw_exists = bool(raw)
    gone = [name for name in raw if name not in columns and not name.startswith(OWN_COLUMNS)]
    if gone:
        plan.problem = (
            f"column {spec.name}.{gone[0]} is in raw_app but no longer in the source (dropped or"
            f" renamed): update the staging model that reads it (models/staging/app/base/"
            f"base_app__{spec.name}.sql), then run `haven ingest --resync {spec.name}`"
        )
        return plan
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
                f"to {data_type} in the source: update the staging model that reads it, then"
                f" run `haven ingest --resync {spec.name}`"
            )
            return plan
    if raw:
        plan.problem = _compare_decimals(plan, _decimals(warehouse, "raw_app", spec.name), raw)
        if plan.problem:
            return plan
    for name in plan.key:
        if not columns[name][1]:
            continue
        nulls = source.execute(
            sql.SQL("select count(*) from {}.{} where {} is null").format(
                sql.Identifier(source_schema), sql.Identifier(spec.name), sql.Identifier(name)
            )
        ).fetchone()
        if nulls and nulls[0]:
            plan.problem = (
                f"primary key column {spec.name}.{name} has {nulls[0]} NULL value(s) in the source"
            )
            return plan
    return plan


def _decimals(conn: psycopg.Connection, schema: str, table: str) -> dict[str, tuple[int, int]]:
    """``{column: (precision, scale)}`` of a table's ``numeric(p, s)`` columns."""
    rows = conn.execute(
        "select column_name, numeric_precision, numeric_scale from information_schema.columns"
        " where table_schema = %s and table_name = %s and data_type = 'numeric'"
        " and numeric_precision is not null",
        (schema, table),
    ).fetchall()
    return {name: (precision, scale) for name, precision, scale in rows}


def _compare_decimals(
    plan: TablePlan, raw_decimals: dict[str, tuple[int, int]], raw: dict[str, tuple[str, bool]]
) -> str | None:
    """A source ``numeric`` wider than raw's (more digits before or after the point, or no limit)
    is widened in raw (``plan.widened``); a narrower one has rounded the source's values, so the
    table must be loaded again: returns that sentence."""
    table = plan.spec.name
    for name, (precision, scale) in raw_decimals.items():
        if name not in raw or raw[name][0] != "numeric":
            continue
        now = plan.decimals.get(name)
        if now is None:
            plan.widened[name] = "numeric"  # unconstrained in the source now
        elif now != (precision, scale):
            new_precision, new_scale = now
            if new_scale >= scale and new_precision - new_scale >= precision - scale:
                plan.widened[name] = f"numeric({new_precision}, {new_scale})"
            else:
                return (
                    f"column {table}.{name} narrowed from numeric({precision}, {scale}) in raw_app"
                    f" to numeric({new_precision}, {new_scale}) in the source, which rounds its"
                    f" values: update the staging model that reads it, then run"
                    f" `haven ingest --resync {table}`"
                )
    return None


def widen_columns(warehouse: psycopg.Connection, spec: TableSpec, widened: dict[str, str]) -> None:
    """Give raw columns the source's wider type, values kept, in one transaction.

    PostgreSQL cannot change the type of a column a view reads, and the views over raw (dbt's
    base models) belong to the transformer. So the values move to a new column of the wider type
    and the old column is dropped with the views that read it, as a re-sync drops them; the next
    build makes them again (``haven.transform.changes``: a missing base view means build)."""
    raw = sql.SQL("raw_app.{}").format(sql.Identifier(spec.name))
    nullable = {
        name: is_nullable
        for name, (_, is_nullable) in source_columns(warehouse, "raw_app", spec.name).items()
    }
    with warehouse.transaction():
        for name, wider in widened.items():
            column, scratch = sql.Identifier(name), sql.Identifier(f"_haven_widening_{name}")
            warehouse.execute(
                sql.SQL("alter table {} add column {} {}").format(raw, scratch, sql.SQL(wider))
            )
            warehouse.execute(sql.SQL("update {} set {} = {}").format(raw, scratch, column))
            warehouse.execute(sql.SQL("alter table {} drop column {} cascade").format(raw, column))
            warehouse.execute(
                sql.SQL("alter table {} rename column {} to {}").format(raw, scratch, column)
            )
            if not nullable[name]:
                warehouse.execute(
                    sql.SQL("alter table {} alter column {} set not null").format(raw, column)
                )
            # dlt merges through a staging copy of the table, made once and never altered by dlt
            if column_types(warehouse, "raw_app_staging", spec.name, (name,)):
                warehouse.execute(
                    sql.SQL("alter table raw_app_staging.{} alter column {} type {}").format(
                        sql.Identifier(spec.name), column, sql.SQL(wider)
                    )
                )


def primary_key(conn: psycopg.Connection, schema: str, table: str) -> tuple[str, ...]:
    """The columns of a table's primary key constraint, in key order; empty when it has none."""
    rows = conn.execute(
        "select a.attname from pg_index as i"
        " join pg_class as c on c.oid = i.indrelid"
        " join pg_namespace as n on n.oid = c.relnamespace"
        " cross join lateral unnest(i.indkey) with ordinality as k (attnum, position)"
        " join pg_attribute as a on a.attrelid = c.oid and a.attnum = k.attnum"
        " where i.indisprimary and n.nspname = %s and c.relname = %s"
        " order by k.position",
        (schema, table),
    ).fetchall()
    return tuple(name for (name,) in rows)


def column_types(
    conn: psycopg.Connection, schema: str, table: str, columns: tuple[str, ...]
) -> dict[str, str]:
    """``{column: SQL type}`` as ``format_type`` spells it, usable in a cast or a CREATE TABLE."""
    rows = conn.execute(
        "select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute as a"
        " join pg_class as c on c.oid = a.attrelid"
        " join pg_namespace as n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relname = %s and a.attname = any(%s) and not a.attisdropped",
        (schema, table, list(columns)),
    ).fetchall()
    return dict(rows)


def loaded_versions(
    warehouse: psycopg.Connection, spec: TableSpec, key: tuple[str, ...], lag: timedelta
) -> pa.Table | None:
    """The (key, cursor) pairs raw already holds inside the overlap window, keys as text.

    The incremental cursor re-reads ``lag`` before its last value so late commits are not missed;
    rows that come back unchanged are filtered out against these pairs, so a run with no source
    change loads nothing. Keys travel as text so every key type (integers, uuid, text, composite)
    compares the same way. Only live rows count: a key deleted and then restored in the source
    with its old ``updated_at`` must load again, and the deleted rows a full refresh kept (of a
    source since replaced, say) must not move the window.
    """
    live = (
        sql.SQL("{} is null").format(sql.Identifier(DELETED_AT))
        if column_types(warehouse, "raw_app", spec.name, (DELETED_AT,))
        else sql.SQL("true")
    )
    query = sql.SQL(
        "select {keys}, {cursor} from raw_app.{table} where {live}"
        " and {cursor} >= (select max({cursor}) from raw_app.{table} where {live}) - %s"
    ).format(
        keys=sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(k)) for k in key),
        cursor=sql.Identifier(spec.cursor),
        table=sql.Identifier(spec.name),
        live=live,
    )
    with warehouse.cursor() as cursor:
        rows = cursor.execute(query, (lag,)).fetchall()
    if not rows:
        return None
    values = list(zip(*rows, strict=True))
    columns = {name: pa.array(values[i], pa.string()) for i, name in enumerate(key)}
    columns[spec.cursor] = pa.array(values[-1], pa.timestamp("us", tz="UTC"))
    return pa.table(columns)


def drop_loaded(batch: pa.Table, loaded: pa.Table | None, cursor: str) -> pa.Table:
    """``batch`` without the rows whose (key, cursor) raw already has (``loaded``'s columns)."""
    if loaded is None or batch.num_rows == 0:
        return batch
    keys = loaded.column_names
    probe = pa.table(
        {
            name: batch.column(name).cast(
                pa.string() if name != cursor else loaded.schema.field(name).type
            )
            for name in keys
        }
    ).append_column("_row", pa.array(range(batch.num_rows)))
    fresh = probe.join(loaded, keys=keys, join_type="left anti")
    return (
        batch.take(fresh.column("_row").combine_chunks().sort())
        if fresh.num_rows < batch.num_rows
        else batch
    )


def key_fingerprint_sql(
    key: sql.Composable, relation: sql.Composable, where: sql.Composable | None = None
) -> sql.Composed:
    """count and order-free hash sum of the keys' text form: equal on both sides means the key
    sets agree (a collision needs two different key sets with the same 64-bit hash sum and
    count). ``key`` is an expression that renders the key the same way on both servers."""
    query = sql.SQL(
        "select count(*), coalesce(sum(hashtextextended({key}, 0)::numeric), 0) from {relation}"
    ).format(key=key, relation=relation)
    return query + sql.SQL(" where ") + where if where is not None else query


def detect_deletes(
    source: psycopg.Connection,
    warehouse: psycopg.Connection,
    source_schema: str,
    spec: TableSpec,
    key: tuple[str, ...],
    load_started: datetime,
) -> int:
    """Mark raw rows whose key is gone from the source; return how many were newly marked.

    A cheap fingerprint of both key sets decides whether anything was deleted at all; only then
    are the source keys copied to the warehouse (binary COPY) and anti-joined. The source keys
    are cast to raw's column types (read from the catalog) so the binary COPY matches whatever
    the key's type is: smallint, integer, bigint, uuid, text, or several columns.
    """
    raw = sql.SQL("raw_app.{}").format(sql.Identifier(spec.name))
    live = sql.SQL("{} is null").format(sql.Identifier(DELETED_AT))
    source_relation = sql.SQL("{}.{}").format(
        sql.Identifier(source_schema), sql.Identifier(spec.name)
    )
    types = column_types(warehouse, "raw_app", spec.name, key)
    if not types:
        return 0  # nothing landed yet (an empty source table), so nothing can have gone
    add_deletion_mark(warehouse, spec)
    cast = [sql.SQL("{}::{}").format(sql.Identifier(name), sql.SQL(types[name])) for name in key]
    as_text = sql.SQL(" || '|' || ").join(sql.SQL("({})::text").format(part) for part in cast)
    source_print = source.execute(key_fingerprint_sql(as_text, source_relation)).fetchone()
    raw_print = warehouse.execute(key_fingerprint_sql(as_text, raw, live)).fetchone()
    if source_print == raw_print:
        return 0
    with warehouse.transaction():
        warehouse.execute(
            sql.SQL(
                "create temporary table source_keys ({}, primary key ({})) on commit drop"
            ).format(
                sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(types[name]))
                    for name in key
                ),
                sql.SQL(", ").join(sql.Identifier(name) for name in key),
            )
        )
        with (
            source.cursor().copy(
                sql.SQL("copy (select {} from {}) to stdout (format binary)").format(
                    sql.SQL(", ").join(cast), source_relation
                )
            ) as out,
            warehouse.cursor().copy("copy source_keys from stdin (format binary)") as into,
        ):
            for chunk in out:
                into.write(chunk)
        marked = warehouse.execute(
            sql.SQL(
                "update {raw} as r set {deleted} = %s where r.{deleted} is null"
                " and not exists (select from source_keys as s where {match})"
            ).format(
                raw=raw,
                deleted=sql.Identifier(DELETED_AT),
                match=_same_key(key, "s", "r"),
            ),
            (load_started,),
        )
        return marked.rowcount


def add_deletion_mark(warehouse: psycopg.Connection, spec: TableSpec) -> None:
    """Give raw_app.<table> its deletion mark column (dlt never creates it)."""
    warehouse.execute(
        sql.SQL("alter table raw_app.{} add column if not exists {} timestamptz").format(
            sql.Identifier(spec.name), sql.Identifier(DELETED_AT)
        )
    )


def hold_deletions(warehouse: psycopg.Connection, spec: TableSpec, key: tuple[str, ...]) -> int:
    """Before a full refresh drops raw_app.<table>: copy its deleted keys' rows (marked deleted,
    no live row with the key) into ``raw_app_tombstones.<table>``, where they wait until the
    table is loaded again (``restore_deletions``). Keys an earlier, interrupted refresh already
    holds keep their held row. Returns how many rows were newly held. Run it in the transaction
    that drops the table: raw is then either whole, or gone with its deletions held."""
    present = column_types(warehouse, "raw_app", spec.name, (*key, DELETED_AT))
    if DELETED_AT not in present or not all(name in present for name in key):
        return 0  # never checked for deletes, or the key is not in raw: nothing to keep
    raw = sql.SQL("raw_app.{}").format(sql.Identifier(spec.name))
    held = sql.SQL("{}.{}").format(sql.Identifier(TOMBSTONES), sql.Identifier(spec.name))
    if not column_types(warehouse, TOMBSTONES, spec.name, key):
        warehouse.execute(sql.SQL("create table {} (like {})").format(held, raw))
    columns = _shared_columns(warehouse, spec)
    inserted = warehouse.execute(
        sql.SQL(
            "insert into {held} ({columns}) select {columns} from {raw} as r"
            " where r.{deleted} is not null"
            " and not exists (select from {raw} as l where l.{deleted} is null and {same_l})"
            " and not exists (select from {held} as h where {same_h})"
        ).format(
            held=held,
            raw=raw,
            columns=sql.SQL(", ").join(sql.Identifier(name) for name in columns),
            deleted=sql.Identifier(DELETED_AT),
            same_l=_same_key(key, "l", "r"),
            same_h=_same_key(key, "h", "r"),
        )
    )
    return inserted.rowcount


def restore_deletions(warehouse: psycopg.Connection, spec: TableSpec, key: tuple[str, ...]) -> int:
    """After raw_app.<table> was loaded again: the rows a full refresh held (``hold_deletions``)
    go back into it, except for keys it holds again (the application reused or restored them),
    and the holding table is dropped, in one transaction. Columns go by name, cast to raw's
    types; a column raw gained since is NULL in them (its NOT NULL, if dlt declared one, is
    dropped: a deleted row has no value for it). Returns how many rows came back."""
    held = sql.SQL("{}.{}").format(sql.Identifier(TOMBSTONES), sql.Identifier(spec.name))
    if not column_types(warehouse, TOMBSTONES, spec.name, key):
        return 0
    if len(column_types(warehouse, "raw_app", spec.name, key)) < len(key):
        return 0  # the table has not landed again yet: keep holding
    raw = sql.SQL("raw_app.{}").format(sql.Identifier(spec.name))
    with warehouse.transaction():
        add_deletion_mark(warehouse, spec)
        columns = _shared_columns(warehouse, spec)
        for name, (_type, nullable) in source_columns(warehouse, "raw_app", spec.name).items():
            if not nullable and name not in columns:
                warehouse.execute(
                    sql.SQL("alter table {} alter column {} drop not null").format(
                        raw, sql.Identifier(name)
                    )
                )
        types = column_types(warehouse, "raw_app", spec.name, tuple(columns))
        restored = warehouse.execute(
            sql.SQL(
                "insert into {raw} ({columns}) select {casts} from {held} as h"
                " where not exists (select from {raw} as r where {same})"
            ).format(
                raw=raw,
                held=held,
                columns=sql.SQL(", ").join(sql.Identifier(name) for name in columns),
                casts=sql.SQL(", ").join(
                    sql.SQL("h.{}::{}").format(sql.Identifier(name), sql.SQL(types[name]))
                    for name in columns
                ),
                same=_same_key(key, "r", "h"),
            )
        ).rowcount
        warehouse.execute(sql.SQL("drop table {}").format(held))
    return restored


def _shared_columns(warehouse: psycopg.Connection, spec: TableSpec) -> list[str]:
    """The columns raw_app.<table> and its held deletions both have, in raw's order."""
    held = source_columns(warehouse, TOMBSTONES, spec.name)
    return [name for name in source_columns(warehouse, "raw_app", spec.name) if name in held]


def _same_key(key: tuple[str, ...], left: str, right: str) -> sql.Composed:
    return sql.SQL(" and ").join(
        sql.SQL("{}.{} = {}.{}").format(
            sql.Identifier(left), sql.Identifier(name), sql.Identifier(right), sql.Identifier(name)
        )
        for name in key
    )


def index_raw(warehouse: psycopg.Connection, spec: TableSpec, key: tuple[str, ...]) -> None:
    """Index what the transforms read raw by, so an incremental build costs what changed: the
    key, the load id and the deletion mark (a model's changed rows), and the spec's lookups."""
    raw = sql.SQL("raw_app.{}").format(sql.Identifier(spec.name))
    present = column_types(warehouse, "raw_app", spec.name, (*key, DELETED_AT))
    if not present:
        return  # nothing landed yet
    indexes = [key, *((column,) for column in spec.lookups)]
    for columns in indexes:
        warehouse.execute(
            sql.SQL("create index if not exists {} on {} ({})").format(
                sql.Identifier(f"{spec.name}__{'__'.join(columns)}"),
                raw,
                sql.SQL(", ").join(sql.Identifier(column) for column in columns),
            )
        )
    # the load id as a number: its statistics size a change set (as text they cannot)
    warehouse.execute(
        sql.SQL("create index if not exists {} on {} (({}::numeric))").format(
            sql.Identifier(f"{spec.name}__load_id_number"), raw, sql.Identifier("_dlt_load_id")
        )
    )
    if DELETED_AT in present:
        warehouse.execute(
            sql.SQL("create index if not exists {} on {} ({}) where {} is not null").format(
                sql.Identifier(f"{spec.name}__{DELETED_AT}"),
                raw,
                sql.Identifier(DELETED_AT),
                sql.Identifier(DELETED_AT),
            )
        )


def analyze_raw(warehouse: psycopg.Connection, spec: TableSpec, loaded: int) -> None:
    """Planner statistics for a raw table that has none yet or just took a large load (a tenth
    of its rows or more): the first build after a full load otherwise plans its anti-joins blind
    and can run for minutes. Smaller loads are left to autovacuum."""
    if loaded == 0:
        return
    row = warehouse.execute(
        "select c.reltuples, coalesce(s.last_analyze, s.last_autoanalyze) from pg_class as c"
        " join pg_namespace as n on n.oid = c.relnamespace"
        " left join pg_stat_user_tables as s on s.relid = c.oid"
        " where n.nspname = 'raw_app' and c.relname = %s",
        (spec.name,),
    ).fetchone()
    if row is None:
        return
    rows, analyzed = row
    if analyzed is None or loaded >= 0.1 * max(float(rows), 0.0):
        warehouse.execute(sql.SQL("analyze raw_app.{}").format(sql.Identifier(spec.name)))


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
