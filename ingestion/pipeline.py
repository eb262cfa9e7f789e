"""``haven ingest``: run the ``app`` source into ``raw_app``, then detect hard deletes.

Runnable directly (``python -m ingestion.pipeline``) as well as through the CLI.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from haven.settings import PROJECT_DIR, Settings

# dlt reads .dlt/config.toml from its project directory, which defaults to the working directory.
os.environ.setdefault("DLT_PROJECT_DIR", str(PROJECT_DIR))

import dlt  # noqa: E402
import psycopg  # noqa: E402
from dlt.pipeline.exceptions import PipelineStepFailed  # noqa: E402
from psycopg import sql  # noqa: E402

from haven.errors import HavenError  # noqa: E402
from haven.warehouse.connection import connect  # noqa: E402
from haven.warehouse.endpoints import LOADER, Endpoints  # noqa: E402
from ingestion.app import app  # noqa: E402
from ingestion.app.helpers import TablePlan, detect_deletes, loaded_versions, preflight  # noqa: E402
from ingestion.app.settings import TABLES, TableSpec  # noqa: E402


class _QuietHintMerge(logging.Filter):
    """connectorx marks every arrow column nullable and without precision; dlt keeps the reflected
    hints (what we want) and warns once per table per run. Drop that one warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "column hints were different" not in record.getMessage()


logging.getLogger("dlt").addFilter(_QuietHintMerge())

PIPELINE_NAME = "app"
DATASET = "raw_app"


@dataclass
class TableReport:
    table: str
    extracted: int = 0
    loaded: int = 0
    deleted: int = 0
    new_columns: list[str] = field(default_factory=list)
    problem: str | None = None


@dataclass
class IngestReport:
    tables: dict[str, TableReport]
    seconds: float
    load_id: str | None
    bytes_moved: int = 0
    """Size of the load files written for this run (what crossed from source to warehouse)."""

    @property
    def failed(self) -> list[TableReport]:
        return [report for report in self.tables.values() if report.problem]

    @property
    def loaded_rows(self) -> int:
        return sum(report.loaded for report in self.tables.values())


Progress = Callable[[str], None]


def pipeline(settings: Settings, endpoints: Endpoints) -> dlt.Pipeline:
    """The dlt pipeline: working files under ``.haven/dlt``, state kept in the warehouse too."""
    return dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        pipelines_dir=str(settings.dlt_dir),
        destination=dlt.destinations.postgres(credentials=endpoints.role_url(LOADER)),
        dataset_name=DATASET,
    )


def ingest(
    settings: Settings,
    endpoints: Endpoints,
    *,
    tables: tuple[TableSpec, ...] = TABLES,
    full_refresh: bool = False,
    progress: Progress = lambda _: None,
) -> IngestReport:
    """Load every table whose preflight passes; tables with a problem are reported, not loaded.

    ``full_refresh`` drops the raw tables and the incremental state first and reloads everything
    (after the source was regenerated, for example).
    """
    started = time.perf_counter()
    load_started = datetime.now(UTC)
    lag = timedelta(seconds=settings.ingest_lag_seconds)
    reports = {spec.name: TableReport(spec.name) for spec in tables}

    if full_refresh:
        progress("dropping raw_app and the incremental state")
        reset(settings, endpoints)
    progress("checking the source schema against raw_app")
    with (
        connect(endpoints.source_url, purpose="source database") as source,
        connect(endpoints.role_url(LOADER), purpose="warehouse") as warehouse,
    ):
        plans: list[TablePlan] = [
            preflight(source, warehouse, settings.source_schema, spec) for spec in tables
        ]
        for plan in plans:
            reports[plan.spec.name].new_columns = plan.new_columns
            reports[plan.spec.name].problem = plan.problem
        runnable = tuple(plan.spec for plan in plans if plan.problem is None)
        loaded = {
            plan.spec.name: loaded_versions(warehouse, plan.spec, plan.key, lag)
            for plan in plans
            if plan.problem is None and plan.raw_exists and plan.spec.mutable
        }

    def on_batch(table: str, rows: int) -> None:
        reports[table].extracted += rows
        progress(f"extracting {table}: {reports[table].extracted:,} rows")

    load_id = None
    bytes_moved = 0
    if runnable:
        source = app(
            credentials=endpoints.source_url,
            schema=settings.source_schema,
            tables=runnable,
            lag_seconds=settings.ingest_lag_seconds,
            loaded=loaded,
            first_loads=frozenset(plan.spec.name for plan in plans if not plan.raw_exists),
            decimals={plan.spec.name: plan.decimals for plan in plans},
            primary_keys={plan.spec.name: plan.key for plan in plans},
            on_batch=on_batch,
        )
        dlt_pipeline = pipeline(settings, endpoints)
        try:
            progress("extracting")
            dlt_pipeline.extract(source, loader_file_format="parquet")
            progress("normalizing")
            normalized = dlt_pipeline.normalize()
            progress("loading into raw_app (parquet, binary COPY)")
            info = dlt_pipeline.load()
        except PipelineStepFailed as error:
            raise HavenError(
                f"The ingest failed at the {error.step} step: {_root_cause(error)}."
            ) from None
        load_id = info.loads_ids[-1] if info.loads_ids else None
        for table_name, rows in normalized.row_counts.items():
            if table_name in reports:
                reports[table_name].loaded += rows
        bytes_moved = sum(
            metrics.file_size
            for packages in normalized.metrics.values()
            for step in packages
            for metrics in step["job_metrics"].values()
        )

    progress("looking for hard deletes")
    with (
        connect(endpoints.source_url, purpose="source database") as source,
        connect(endpoints.role_url(LOADER), purpose="warehouse") as warehouse,
    ):
        for plan in plans:
            if plan.problem is None and plan.spec.mutable:
                _detect_deletes(source, warehouse, settings, plan, load_started, reports)
    return IngestReport(reports, time.perf_counter() - started, load_id, bytes_moved)


def _detect_deletes(
    source: psycopg.Connection,
    warehouse: psycopg.Connection,
    settings: Settings,
    plan: TablePlan,
    load_started: datetime,
    reports: dict[str, TableReport],
) -> None:
    """Hard-delete detection for one table; a failure stops only this table, with the cause named,
    and leaves nothing half-done (the marking runs in one transaction)."""
    try:
        reports[plan.spec.name].deleted = detect_deletes(
            source, warehouse, settings.source_schema, plan.spec, plan.key, load_started
        )
    except psycopg.Error as error:
        reports[
            plan.spec.name
        ].problem = f"hard-delete detection for {plan.spec.name} failed: {_root_cause(error)}"


def reset(settings: Settings, endpoints: Endpoints) -> None:
    """Forget everything loaded: dlt's local working state and every table in raw_app (dlt's
    state table included, or the next run would restore the incremental cursors from it)."""
    pipeline(settings, endpoints).drop()
    with (
        connect(endpoints.role_url(LOADER), purpose="warehouse") as warehouse,
        warehouse.transaction(),
    ):
        tables = warehouse.execute(
            "select schemaname, tablename from pg_tables where schemaname in (%s, %s)",
            (DATASET, f"{DATASET}_staging"),
        ).fetchall()
        for schema, table in tables:
            warehouse.execute(
                sql.SQL("drop table {}.{} cascade").format(
                    sql.Identifier(schema), sql.Identifier(table)
                )
            )


def _root_cause(error: BaseException) -> str:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    text = str(error).strip().splitlines()
    return text[0].rstrip(".") if text else type(error).__name__


if __name__ == "__main__":
    from haven.settings import get_settings
    from haven.warehouse.endpoints import up

    settings = get_settings()
    result = ingest(settings, up(settings), progress=print)
    print(f"loaded {result.loaded_rows:,} rows in {result.seconds:.1f} s")
