"""Value reconciliation: raw's live rows against the source's, over every column, key by key.

Counts, sums and the cursor cannot see an update that never touched ``updated_at`` (a backfill,
a missing trigger, a bulk fix), nor a row that landed wrong. So each row is hashed on both servers
from the same text (every column the source has, cast to raw's type, as one composite value),
the keys are spread over buckets, and only the buckets whose count or hash sum differ are read
key by key. A whole table costs one aggregate on each side when nothing differs.

Two scopes: ``all`` rows (the nightly run, ``haven ingest --repair``), or ``changed``: the rows
inside the overlap window the run re-read (the hourly run). Rows the source changed after the
ingest read it (their cursor past raw's newest) are not differences: the next ingest loads them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

import psycopg
from psycopg import sql

from ingestion.app.helpers import OWN_COLUMNS, column_types, source_columns
from ingestion.app.settings import DELETED_AT, TableSpec

Scope = Literal["all", "changed"]

BUCKETS = 1024
"""Keys are spread over this many buckets; only differing buckets are read key by key."""

SAMPLE_KEYS = 5
"""How many differing keys a check names."""


@dataclass
class ValueCheck:
    """What one table's value reconciliation found."""

    table: str
    scope: Scope
    rows_compared: int = 0
    differing: list[tuple[object, ...]] = field(default_factory=list)
    """Keys (the source's values) whose row in raw differs from the source's or is missing."""
    not_yet_deleted: int = 0
    """Live raw keys the source no longer has (deleted after this ingest looked): the next
    ingest marks them, so they are not counted as differences."""
    repaired: int = 0
    """Differing rows a repair re-read from the source."""

    @property
    def sample_keys(self) -> list[str]:
        return [_key_text(key) for key in self.differing[:SAMPLE_KEYS]]


def _key_text(key: tuple[object, ...]) -> str:
    return str(key[0]) if len(key) == 1 else "(" + ", ".join(str(part) for part in key) + ")"


def compare_values(
    source: psycopg.Connection,
    warehouse: psycopg.Connection,
    source_schema: str,
    spec: TableSpec,
    key: tuple[str, ...],
    scope: Scope,
    *,
    lag: timedelta,
    load_id: str | None = None,
) -> ValueCheck | None:
    """Compare raw_app.<table>'s live rows with the source's; None when raw has no such table.

    ``lag`` is the overlap window of a ``changed`` check of a merged table; an append-only
    table's changed rows are those of ``load_id`` (none when it loaded nothing)."""
    check = ValueCheck(spec.name, scope)
    raw_columns = source_columns(warehouse, "raw_app", spec.name)
    if not raw_columns:
        return None
    columns = [
        name
        for name in source_columns(source, source_schema, spec.name)
        if name in raw_columns and not name.startswith(OWN_COLUMNS)
    ]
    types = column_types(warehouse, "raw_app", spec.name, (*columns, *key))
    if any(name not in types for name in key):
        return None
    raw = sql.SQL("raw_app.{}").format(sql.Identifier(spec.name))
    cursor = sql.Identifier(spec.cursor)
    live = (
        sql.SQL("{} is null").format(sql.Identifier(DELETED_AT))
        if DELETED_AT in raw_columns
        else sql.SQL("true")
    )
    newest = warehouse.execute(sql.SQL("select max({}) from {} where {}").format(cursor, raw, live))
    watermark = newest.fetchone()[0]  # type: ignore[index]
    if watermark is None:
        return check  # nothing live in raw: the count reconciliation speaks for it
    since = _since(warehouse, spec, raw, cursor, watermark, scope, lag, load_id)
    if since is _NOTHING:
        return check
    window = sql.SQL("true") if since is None else sql.SQL("{} >= %(since)s").format(cursor)
    shape = _RowShape(key, columns, types)
    with _in_utc(source), _in_utc(warehouse):
        parameters = {"since": since, "watermark": watermark, "buckets": BUCKETS}
        source_relation = sql.SQL("{}.{}").format(
            sql.Identifier(source_schema), sql.Identifier(spec.name)
        )
        source_where = window + sql.SQL(" and {} <= %(watermark)s").format(cursor)
        ours = _bucket_sums(source, shape, source_relation, source_where, parameters)
        theirs = _bucket_sums(warehouse, shape, raw, live + sql.SQL(" and ") + window, parameters)
        check.rows_compared = sum(count for count, _ in ours.values())
        differing = sorted(b for b in ours.keys() | theirs.keys() if ours.get(b) != theirs.get(b))
        if not differing:
            return check
        parameters["differing"] = differing
        in_buckets = sql.SQL(" and {} = any(%(differing)s)").format(shape.bucket)
        source_rows = {
            row[0]: row[1:]
            for row in source.execute(
                sql.SQL("select {}, {}, {}, {} from {} where {}").format(
                    shape.key_text,
                    shape.row_hash,
                    cursor,
                    shape.key_columns,
                    source_relation,
                    window + in_buckets,
                ),
                parameters,
            )
        }
        raw_rows = dict(
            warehouse.execute(
                sql.SQL("select {}, {} from {} where {}").format(
                    shape.key_text,
                    shape.row_hash,
                    raw,
                    live + sql.SQL(" and ") + window + in_buckets,
                ),
                parameters,
            ).fetchall()
        )
        for key_text, (row_hash, changed_at, *native) in sorted(source_rows.items()):
            if changed_at > watermark:
                continue  # changed after the ingest read the source: the next ingest loads it
            if raw_rows.get(key_text) != row_hash:
                check.differing.append(tuple(native))
        only_raw = sorted(raw_rows.keys() - source_rows.keys())
        if only_raw:
            _outside_window(source, shape, source_relation, only_raw, raw_rows, check)
    return check


class _Nothing:
    pass


_NOTHING = _Nothing()
"""A changed-rows check with no changed rows to compare."""


def _since(
    warehouse: psycopg.Connection,
    spec: TableSpec,
    raw: sql.Composable,
    cursor: sql.Composable,
    watermark: object,
    scope: Scope,
    lag: timedelta,
    load_id: str | None,
) -> object:
    """The lowest cursor value a check compares: None for every row."""
    if scope == "all":
        return None
    if spec.mutable:
        return watermark - lag  # type: ignore[operator]
    if load_id is None:
        return _NOTHING
    lowest = warehouse.execute(
        sql.SQL("select min({}) from {} where _dlt_load_id = %s").format(cursor, raw), (load_id,)
    ).fetchone()
    return _NOTHING if lowest is None or lowest[0] is None else lowest[0]


def _outside_window(
    source: psycopg.Connection,
    shape: _RowShape,
    source_relation: sql.Composable,
    keys: list[str],
    raw_rows: dict[str, int],
    check: ValueCheck,
) -> None:
    """Live raw keys the compared source rows lack: the source may hold them outside the window
    (its cursor moved back) or changed since, or not at all (deleted since the ingest looked)."""
    found = {
        row[0]: row[1:]
        for row in source.execute(
            sql.SQL("select {}, {}, {} from {} where {} = any(%s)").format(
                shape.key_text,
                shape.row_hash,
                shape.key_columns,
                source_relation,
                shape.key_text,
            ),
            (keys,),
        )
    }
    for key_text in keys:
        if key_text not in found:
            check.not_yet_deleted += 1
            continue
        row_hash, *native = found[key_text]
        if row_hash != raw_rows[key_text]:
            check.differing.append(tuple(native))


@dataclass
class _RowShape:
    """The SQL that renders a row and its key the same way on both servers: every value cast to
    raw's column type, then the composite's text (quoted, NULLs distinct from empty strings)."""

    key: tuple[str, ...]
    columns: list[str]
    types: dict[str, str]

    def _composite(self, names: Iterable[str]) -> sql.Composed:
        return sql.SQL("row({})::text").format(
            sql.SQL(", ").join(
                sql.SQL("{}::{}").format(sql.Identifier(name), sql.SQL(self.types[name]))
                for name in names
            )
        )

    @property
    def key_text(self) -> sql.Composed:
        return self._composite(self.key)

    @property
    def row_hash(self) -> sql.Composed:
        return sql.SQL("hashtextextended({}, 0)").format(self._composite(self.columns))

    @property
    def bucket(self) -> sql.Composed:
        return sql.SQL("(hashtextextended({}, 1) & (%(buckets)s - 1))").format(self.key_text)

    @property
    def key_columns(self) -> sql.Composed:
        return sql.SQL(", ").join(sql.Identifier(name) for name in self.key)


def _bucket_sums(
    conn: psycopg.Connection,
    shape: _RowShape,
    relation: sql.Composable,
    where: sql.Composable,
    parameters: dict[str, object],
) -> dict[int, tuple[int, int]]:
    """Per bucket: rows and the sum of their row hashes."""
    rows = conn.execute(
        sql.SQL(
            "select {bucket}, count(*), sum({row_hash}::numeric) from {relation}"
            " where {where} group by 1"
        ).format(bucket=shape.bucket, row_hash=shape.row_hash, relation=relation, where=where),
        parameters,
    ).fetchall()
    return {bucket: (int(count), int(total)) for bucket, count, total in rows}


@contextmanager
def _in_utc(conn: psycopg.Connection) -> Iterator[None]:
    """Timestamps render the same on both servers only in one time zone: UTC, for the check."""
    before = conn.execute("select current_setting('TimeZone')").fetchone()[0]  # type: ignore[index]
    conn.execute("select set_config('TimeZone', 'UTC', false)")
    try:
        yield
    finally:
        conn.execute("select set_config('TimeZone', %s, false)", (before,))
