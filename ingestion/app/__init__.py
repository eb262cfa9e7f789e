"""The ``app`` dlt source: every Clutter Haven application table, landed in ``raw_app``.

Fast path: ``sql_table`` with the connectorx backend streaming arrow batches; the pipeline writes
them to parquet once and the postgres destination bulk-loads parquet through ADBC (binary COPY). Mutable tables are incremental on ``updated_at`` with an overlap window
and merged on the key; append-only tables are appended by id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

import dlt
import pyarrow as pa
from dlt.sources import DltResource
from dlt.sources.sql_database import sql_table
from sqlalchemy import Select, Table, tuple_

from ingestion.app.helpers import drop_loaded, restore_decimals, widen_small_integers
from ingestion.app.settings import TABLES, TableSpec

BatchCallback = Callable[[str, int], None]


@dlt.source(name="app", max_table_nesting=0)
def app(
    credentials: str = dlt.secrets.value,
    schema: str = "public",
    tables: Sequence[TableSpec] = TABLES,
    lag_seconds: int = 3 * 24 * 3600,
    backend: str = dlt.config.value,
    chunk_size: int = dlt.config.value,
    loaded: Mapping[str, pa.Table | None] | None = None,
    first_loads: frozenset[str] = frozenset(),
    appended_through: Mapping[str, object] | None = None,
    decimals: Mapping[str, dict[str, tuple[int, int]]] | None = None,
    primary_keys: Mapping[str, tuple[str, ...]] | None = None,
    repair: Mapping[str, list[tuple[object, ...]]] | None = None,
    on_batch: BatchCallback | None = None,
) -> list[DltResource]:
    """One resource per table in ``tables``.

    ``loaded`` holds, per table, the (key, cursor) pairs raw already has inside the overlap
    window; re-read rows that match are dropped so an unchanged source loads nothing.
    Tables in ``first_loads`` have no raw table yet: they are appended straight into it, which
    gives the same rows as a merge without dlt's staging copy and merge statement.
    ``appended_through`` holds, per append-only table, the highest cursor value raw holds: the
    table is read from just after it (raw is the truth, not dlt's remembered cursor).
    ``decimals`` holds each table's source ``numeric(p, s)`` columns, restored after connectorx.
    ``primary_keys`` holds each table's primary key as the source's catalog declares it.
    ``repair`` holds, per table, keys to read again whatever their cursor (rows raw holds with
    values the source does not have, ``ingestion.app.values``): such a table is read by those
    keys only, not incrementally, and merged on its key.
    ``on_batch`` is told the table and row count of every extracted batch (progress).
    """
    return [
        _table_resource(
            spec,
            credentials=credentials,
            schema=schema,
            lag_seconds=lag_seconds,
            backend=backend,
            chunk_size=chunk_size,
            already_loaded=(loaded or {}).get(spec.name),
            first_load=spec.name in first_loads,
            start_after=(appended_through or {}).get(spec.name),
            decimals=(decimals or {}).get(spec.name, {}),
            key=(primary_keys or {}).get(spec.name, spec.primary_key),
            only_keys=(repair or {}).get(spec.name),
            on_batch=on_batch,
        )
        for spec in tables
    ]


def _table_resource(
    spec: TableSpec,
    *,
    credentials: str,
    schema: str,
    lag_seconds: int,
    backend: str,
    chunk_size: int,
    already_loaded: pa.Table | None,
    first_load: bool,
    start_after: object,
    decimals: dict[str, tuple[int, int]],
    key: tuple[str, ...],
    only_keys: list[tuple[object, ...]] | None,
    on_batch: BatchCallback | None,
) -> DltResource:
    by_key = None
    if only_keys is not None:
        # as SQLAlchemy binds them: a uuid as text (the reflected type renders strings)
        keys = [tuple(str(v) if isinstance(v, UUID) else v for v in values) for values in only_keys]

        def by_key(query: Select[Any], table: Table) -> Select[Any]:
            columns = [table.c[name] for name in key]
            if len(columns) == 1:
                return query.where(columns[0].in_([values[0] for values in keys]))
            return query.where(tuple_(*columns).in_(keys))

    resource = sql_table(
        credentials=credentials,
        table=spec.name,
        schema=schema,
        backend=backend,  # type: ignore[arg-type]
        chunk_size=chunk_size,
        backend_kwargs={"return_type": "arrow_stream"} if backend == "connectorx" else None,
        reflection_level="full_with_precision",
        type_adapter_callback=widen_small_integers,
        query_adapter_callback=by_key,
        incremental=None
        if only_keys is not None
        else dlt.sources.incremental(
            spec.cursor,
            initial_value=start_after,
            range_start="open" if start_after is not None else "closed",
            lag=float(lag_seconds) if spec.mutable else None,
            on_cursor_value_missing="raise",
        ),
        write_disposition="merge"
        if only_keys is not None
        else "append"
        if first_load
        else spec.disposition,
        primary_key=list(key),
    )
    if decimals:
        resource.add_map(lambda batch: restore_decimals(batch, decimals))
    if spec.mutable and already_loaded is not None and only_keys is None:
        resource.add_map(lambda batch: drop_loaded(batch, already_loaded, spec.cursor))
    # an empty batch would reach the loader as a parquet file without row groups
    resource.add_filter(lambda batch: batch.num_rows > 0)
    if on_batch is not None:

        def report(batch: pa.Table) -> pa.Table:
            on_batch(spec.name, batch.num_rows)
            return batch

        resource.add_map(report)
    return resource
