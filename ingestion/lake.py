"""Raw for the Spark engine: a dlt pipeline that lands ``raw_app`` in the Spark warehouse as an
append log of parquet files (dlt's ``filesystem`` destination), registered as external tables.

The application is ingested once, into PostgreSQL's ``raw_app`` (``ingestion.pipeline``: the
incremental extract, the recovery of interrupted loads, the hard-delete detection the fault
benchmark checked); this pipeline then appends to the lake every raw version that changed since
its last load: rows loaded since (by ``_dlt_load_id``) and rows marked deleted since (by
``_haven_deleted_at``). A key can so appear several times in the lake; staging keeps the newest
version (a deletion mark is newer than the live version it ends). Its watermarks live in dlt's
state, committed with the files they describe, so a failed load is read again by the next one.

Every version is stamped with the time its load started (``_haven_appended_at``): the lake's own
change mark, which the Spark build's change sets read (``macros/changes.sql``). Raw's marks say
when PostgreSQL loaded a row, which can be long before it reaches the lake.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dlt
import pyarrow as pa
from adbc_driver_postgresql import dbapi as adbc

from haven.errors import HavenError
from haven.settings import Settings
from haven.warehouse.endpoints import LOADER, Endpoints
from haven.warehouse.spark import SparkEndpoint, configured
from ingestion.app.settings import DELETED_AT, TABLES, TableSpec

LAKE_SCHEMA = "raw_app"
LOG_SCHEMA = "raw_app_log"
"""Every version the lake holds; ``raw_app`` has views of the newest version per key."""
APPENDED_AT = "_haven_appended_at"
"""When the load that appended a version to the lake started (UTC)."""
BATCH_ROWS = 200_000


@dataclass
class LakeReport:
    rows: dict[str, int] = field(default_factory=dict)
    """Versions appended to the lake per table in this load."""
    seconds: float = 0.0
    load_id: str | None = None


def lake_dir(settings: Settings) -> Path:
    """Where the lake's raw files live: under the local Spark warehouse (the Thrift server's
    ``spark.sql.warehouse.dir``), so one directory holds the cluster's tables."""
    return settings.spark_dir / "warehouse" / f"{LAKE_SCHEMA}.lake"


def pipeline(settings: Settings) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name=f"haven_lake_{settings.warehouse_database}",
        pipelines_dir=str(settings.spark_dir / "dlt"),  # the lake's state lives with the lake
        destination=dlt.destinations.filesystem(bucket_url=lake_dir(settings).as_uri()),
        dataset_name=LAKE_SCHEMA,
    )


def _changed_versions(url: str, spec: TableSpec, appended_at: datetime) -> Iterator[pa.RecordBatch]:
    """The raw rows loaded or marked deleted since this table's watermarks, as Arrow batches
    (ADBC reads PostgreSQL's binary COPY straight into Arrow), stamped with ``appended_at``."""
    state = dlt.current.resource_state()
    since_load = state.get("load_id", "")
    since_deleted = state.get("deleted_at", "-infinity")
    with adbc.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute(
            "select column_name, coalesce(numeric_precision, 38), coalesce(numeric_scale, 10)"
            " from information_schema.columns where table_schema = $1 and table_name = $2"
            " and data_type = 'numeric'",
            (LAKE_SCHEMA, spec.name),
        )
        decimals = {
            name: (int(precision), int(scale)) for name, precision, scale in cursor.fetchall()
        }
        cursor.execute(
            f"select max(_dlt_load_id), max({DELETED_AT})::text from {LAKE_SCHEMA}.{spec.name}"
            if spec.mutable
            else f"select max(_dlt_load_id), null from {LAKE_SCHEMA}.{spec.name}"
        )
        through_load, through_deleted = cursor.fetchone()
        changed = "_dlt_load_id > $1"
        if spec.mutable:
            changed += f" or {DELETED_AT} > $2::timestamptz"
        cursor.execute(
            f"select * from {LAKE_SCHEMA}.{spec.name} where {changed}",
            (since_load, since_deleted) if spec.mutable else (since_load,),
        )
        reader = cursor.fetch_record_batch()
        for batch in reader:
            if batch.num_rows:
                yield _plain_types(batch, decimals).append_column(
                    pa.field(APPENDED_AT, pa.timestamp("us", tz="UTC")),
                    pa.array([appended_at] * batch.num_rows, pa.timestamp("us", tz="UTC")),
                )
    state["load_id"] = through_load or since_load
    if spec.mutable:
        state["deleted_at"] = through_deleted or since_deleted


def _plain_types(batch: pa.RecordBatch, decimals: dict[str, tuple[int, int]]) -> pa.RecordBatch:
    """ADBC hands PostgreSQL types Arrow has no type for (numeric among them) over as opaque
    extension arrays of text; numeric becomes the decimal of the raw column, the rest text."""
    columns, fields = [], []
    for field_, column in zip(batch.schema, batch.columns, strict=True):
        if isinstance(field_.type, pa.BaseExtensionType):
            target = (
                pa.decimal128(*decimals[field_.name]) if field_.name in decimals else pa.string()
            )
            column = column.storage.cast(target)
            field_ = field_.with_type(target)
        columns.append(column)
        fields.append(field_)
    return pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields))


def source(
    endpoints: Endpoints,
    tables: tuple[TableSpec, ...] = TABLES,
    appended_at: datetime | None = None,
) -> list[object]:
    url = endpoints.role_url(LOADER)
    appended_at = appended_at or datetime.now(UTC)
    return [
        dlt.resource(
            _changed_versions,
            name=spec.name,
            write_disposition="append",
            file_format="parquet",
        )(url, spec, appended_at)
        for spec in tables
    ]


def _not_local() -> HavenError:
    return HavenError(
        "The lake is written under the local Spark cluster's warehouse; with HAVEN_SPARK_HOST"
        " point dlt's filesystem destination at your cluster's storage instead."
    )


def check_local(settings: Settings) -> None:
    """The lake can be written: the cluster is the local one (one sentence otherwise)."""
    if configured(settings) is not None:
        raise _not_local()


def export(
    settings: Settings,
    endpoints: Endpoints,
    spark: SparkEndpoint,
    tables: tuple[TableSpec, ...] = TABLES,
) -> LakeReport:
    """Append what changed in PostgreSQL's raw to the lake and (re)register its tables in Spark."""
    if not spark.local:
        raise _not_local()
    started = time.perf_counter()
    lake = pipeline(settings)
    info = lake.run(source(endpoints, tables))
    report = LakeReport(load_id=info.loads_ids[-1] if info.loads_ids else None)
    trace = lake.last_trace.last_normalize_info
    for table in tables:
        report.rows[table.name] = trace.row_counts.get(table.name, 0) if trace else 0
    register(settings, spark, tables)
    report.seconds = time.perf_counter() - started
    return report


def register(
    settings: Settings, spark: SparkEndpoint, tables: tuple[TableSpec, ...] = TABLES
) -> None:
    """Over each lake folder an external parquet table in ``raw_app_log`` (every version, schema
    merged over all files: a column the source gained reads as null in older files), and in
    ``raw_app`` a view with the newest version per key, a deletion mark winning over the live
    version it ends: the same rows as PostgreSQL's raw, so the dbt sources are the same."""
    from contextlib import closing

    from haven.warehouse.spark import connect

    with closing(connect(spark)) as conn:
        cursor = conn.cursor()
        cursor.execute(f"create database if not exists {LOG_SCHEMA}")
        cursor.execute(f"create database if not exists {LAKE_SCHEMA}")
        cursor.execute(f"show views in {LAKE_SCHEMA}")
        views = {row[1] for row in cursor.fetchall()}
        for spec in tables:
            folder = lake_dir(settings) / LAKE_SCHEMA / spec.name
            if not folder.exists():
                continue
            cursor.execute(f"drop table if exists {LOG_SCHEMA}.{spec.name}")
            cursor.execute(
                f"create table {LOG_SCHEMA}.{spec.name} using parquet"
                f" options (mergeSchema 'true') location '{folder.as_uri()}'"
            )
            if spec.name not in views:  # a table by that name (the first lake layout)
                cursor.execute(f"drop table if exists {LAKE_SCHEMA}.{spec.name}")
            cursor.execute(f"describe {LOG_SCHEMA}.{spec.name}")
            columns = ", ".join(
                f"`{row[0]}`"
                for row in cursor.fetchall()
                if row[0] and not row[0].startswith("#") and row[0] != APPENDED_AT
            )
            key = ", ".join(spec.primary_key)
            newest = "_dlt_load_id desc" + (
                f", {DELETED_AT} desc nulls last" if spec.mutable else ""
            )
            cursor.execute(
                f"create or replace view {LAKE_SCHEMA}.{spec.name} as"
                f" select {columns} from ("
                f" select *, row_number() over (partition by {key} order by {newest}) as version"
                f" from {LOG_SCHEMA}.{spec.name}) where version = 1"
            )
