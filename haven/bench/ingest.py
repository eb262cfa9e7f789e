"""``haven bench ingest``: the project's ingest path against the physical limit and dlt's defaults.

Three levels, measured alternately in one run on the same source and the same server:

* L0, the physical limit: ``COPY (select * from t) TO STDOUT (FORMAT binary)`` piped straight into
  ``COPY t FROM STDIN (FORMAT binary)``, table by table.
* L1, the naive baseline: dlt's ``sql_database`` with its defaults (SQLAlchemy backend,
  ``insert_values`` loader). Too slow for a whole source, so it runs on a sample per table and its
  rate is scaled up to the full row count (the report says so).
* L2, the project's path: ``ingestion.pipeline.ingest`` with a full refresh.

Every level lands in its own schema of a scratch database, and L0 and L2 are checked against the
source with row fingerprints.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from psycopg import sql

from haven.bench.measure import Sample, measure, median
from haven.settings import Settings
from haven.warehouse.connection import connect, with_database
from haven.warehouse.endpoints import Endpoints, up
from haven.warehouse.fingerprint import table_fingerprint

SHORT_NAMES = {"L0": "binary COPY pipe", "L1": "dlt defaults", "L2": "haven ingest"}
PIPE_SCHEMA = "bench_copy_pipe"
DEFAULTS_SCHEMA = "bench_dlt_defaults"
DEFAULTS_SAMPLE_ROWS = 20_000


@dataclass
class LevelResult:
    level: str
    description: str
    seconds: list[float] = field(default_factory=list)
    peak_rss_bytes: list[int] = field(default_factory=list)
    rows: int = 0
    sampled_rows: int | None = None
    verified: bool | None = None

    @property
    def median_seconds(self) -> float:
        return median(self.seconds)

    def add(self, sample: Sample) -> None:
        self.seconds.append(sample.seconds)
        self.peak_rss_bytes.append(sample.peak_rss_bytes)


@dataclass
class IngestBenchmark:
    scale: str
    repetitions: int
    tables: dict[str, int]
    bytes_moved: int
    pipe_seconds_per_table: dict[str, list[float]]
    levels: dict[str, LevelResult]

    def ratio_to_pipe(self, level: str) -> float:
        return self.levels[level].median_seconds / self.levels["L0"].median_seconds

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        for name, level in self.levels.items():
            data["levels"][name]["median_seconds"] = level.median_seconds
            data["levels"][name]["ratio_to_L0"] = self.ratio_to_pipe(name)
            data["levels"][name]["rows_per_second"] = self.tables_rows / level.median_seconds
            data["levels"][name]["megabytes_per_second"] = (
                self.bytes_moved / 1e6 / level.median_seconds
            )
        return data

    @property
    def tables_rows(self) -> int:
        return sum(self.tables.values())


def bench_settings(settings: Settings, scale: float, benchmark: str = "bench") -> Settings:
    """Scratch databases for a benchmark, beside the real ones on the same servers: a warehouse
    and a simulated source per benchmark and scale (snapshots must never mix two scales'
    histories), kept between runs."""
    suffix = f"_{benchmark}_sf{scale:g}".replace(".", "_")
    warehouse = f"{settings.warehouse_database}{suffix}"
    source = f"{settings.source_database}{suffix}"
    return settings.model_copy(
        update={
            "warehouse_database": warehouse,
            "source_database": source,
            "warehouse_url": with_database(settings.warehouse_url, warehouse)
            if settings.warehouse_url
            else None,
            "source_url": with_database(settings.source_url, source)
            if settings.source_url
            else None,
        }
    )


def run(
    settings: Settings,
    *,
    scale: float,
    repetitions: int = 3,
    progress: Callable[[str], None] = lambda _: None,
) -> IngestBenchmark:
    """Measure L0, L1 and L2 on a simulated source at ``scale`` (generated once, then reused)."""
    from haven.source import simulator
    from ingestion.app.settings import TABLES
    from ingestion.pipeline import ingest

    bench = bench_settings(settings, scale)
    endpoints = up(bench)
    progress(f"preparing the SF {scale:g} source (generated once, reused afterwards)")
    source_state, _ = simulator.init(endpoints, scale=scale, seed=42)
    table_names = [spec.name for spec in TABLES]
    rows = {table: source_state.rows[table] for table in table_names}
    levels = {
        "L0": LevelResult("L0", "binary COPY TO STDOUT | COPY FROM STDIN pipe (physical limit)"),
        "L1": LevelResult(
            "L1", "dlt defaults: sqlalchemy backend, insert_values loader (naive baseline)"
        ),
        "L2": LevelResult("L2", "haven ingest: connectorx arrow stream, CSV COPY (project path)"),
    }
    pipe_per_table: dict[str, list[float]] = {table: [] for table in table_names}
    bytes_moved = 0
    for repetition in range(1, repetitions + 1):
        progress(f"repetition {repetition}/{repetitions}: L0 binary COPY pipe")
        (per_table, moved), sample = measure(
            lambda: copy_pipe(endpoints, bench.source_schema, table_names)
        )  # type: ignore[misc]
        levels["L0"].add(sample)
        bytes_moved = moved
        for table, seconds in per_table.items():
            pipe_per_table[table].append(seconds)
        progress(f"repetition {repetition}/{repetitions}: L2 haven ingest (full refresh)")
        _, sample = measure(lambda: ingest(bench, endpoints, full_refresh=True))
        levels["L2"].add(sample)
    progress("L1 dlt defaults on a sample")
    sampled, sample = measure(
        lambda: dlt_defaults(bench, endpoints, table_names, DEFAULTS_SAMPLE_ROWS)
    )
    assert isinstance(sampled, int)
    total = sum(rows.values())
    levels["L1"].add(Sample(sample.seconds * total / max(sampled, 1), sample.peak_rss_bytes))
    levels["L1"].sampled_rows = sampled if sampled < total else None

    progress("verifying row counts and checksums")
    levels["L0"].verified = _verify(
        endpoints, bench.source_schema, PIPE_SCHEMA, table_names, deleted_marker=False
    )
    levels["L2"].verified = _verify(
        endpoints, bench.source_schema, "raw_app", table_names, deleted_marker=True
    )
    for level in levels.values():
        level.rows = total
    return IngestBenchmark(f"{scale:g}", repetitions, rows, bytes_moved, pipe_per_table, levels)


def copy_pipe(
    endpoints: Endpoints, source_schema: str, tables: list[str]
) -> tuple[dict[str, float], int]:
    """L0: recreate each table and pipe it over with binary COPY; seconds per table, bytes moved."""
    import time

    moved = 0
    per_table: dict[str, float] = {}
    with (
        connect(endpoints.source_url, purpose="source database") as source,
        connect(endpoints.warehouse_url, purpose="benchmark warehouse") as target,
    ):
        target.execute(
            sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(PIPE_SCHEMA))
        )
        target.execute(sql.SQL("create schema {}").format(sql.Identifier(PIPE_SCHEMA)))
        for table in tables:
            started = time.perf_counter()
            columns = source.execute(
                "select quote_ident(attname) || ' ' || format_type(atttypid, atttypmod) from pg_attribute"
                " where attrelid = %s::regclass and attnum > 0 and not attisdropped order by attnum",
                (f"{source_schema}.{table}",),
            ).fetchall()
            target_table = sql.SQL("{}.{}").format(
                sql.Identifier(PIPE_SCHEMA), sql.Identifier(table)
            )
            target.execute(
                sql.SQL("create table {} ({})").format(
                    target_table, sql.SQL(", ".join(c[0] for c in columns))
                )
            )
            with (
                source.cursor().copy(
                    sql.SQL("copy (select * from {}.{}) to stdout (format binary)").format(
                        sql.Identifier(source_schema), sql.Identifier(table)
                    )
                ) as out,
                target.cursor().copy(
                    sql.SQL("copy {} from stdin (format binary)").format(target_table)
                ) as into,
            ):
                for chunk in out:
                    moved += len(chunk)
                    into.write(chunk)
            per_table[table] = time.perf_counter() - started
    return per_table, moved


def dlt_defaults(
    settings: Settings, endpoints: Endpoints, tables: list[str], sample_rows: int
) -> int:
    """L1: dlt's sql_database with its defaults, ``sample_rows`` per table; rows loaded."""
    import dlt
    from dlt.sources.sql_database import sql_database

    pipelines_dir = settings.home / "bench" / "dlt"
    shutil.rmtree(pipelines_dir, ignore_errors=True)
    with connect(endpoints.warehouse_url, purpose="benchmark warehouse") as target:
        target.execute(
            sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(DEFAULTS_SCHEMA))
        )
    pipeline = dlt.pipeline(
        pipeline_name="bench_dlt_defaults",
        pipelines_dir=str(pipelines_dir),
        destination=dlt.destinations.postgres(credentials=endpoints.warehouse_url),
        dataset_name=DEFAULTS_SCHEMA,
    )
    source = sql_database(
        credentials=endpoints.source_url,
        schema=settings.source_schema,
        table_names=tables,
        chunk_size=sample_rows,
    ).add_limit(1)
    info = pipeline.run(source)
    info.raise_on_failed_jobs()
    counts = pipeline.last_trace.last_normalize_info.row_counts  # type: ignore[union-attr]
    return sum(count for table, count in counts.items() if table in tables)


def _verify(
    endpoints: Endpoints,
    source_schema: str,
    target_schema: str,
    tables: list[str],
    *,
    deleted_marker: bool,
) -> bool:
    from ingestion.app.helpers import source_columns

    with (
        connect(endpoints.source_url, purpose="source database") as source,
        connect(endpoints.warehouse_url, purpose="benchmark warehouse") as target,
    ):
        for table in tables:
            columns = list(source_columns(source, source_schema, table))
            where = None
            if deleted_marker and "_haven_deleted_at" in source_columns(
                target, target_schema, table
            ):
                where = sql.SQL("_haven_deleted_at is null")
            if table_fingerprint(source, source_schema, table, columns) != table_fingerprint(
                target, target_schema, table, columns, where=where
            ):
                return False
    return True


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def write_report(result: IngestBenchmark, directory: Path, machine: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "ingest.json"
    json_path.write_text(
        json.dumps({"machine": machine, **result.to_json()}, indent=2, default=str)
    )
    lines = [
        f"# Ingest benchmark, SF {result.scale} ({machine})",
        "",
        f"{result.tables_rows:,} rows in {len(result.tables)} tables, {result.bytes_moved / 1e6:.1f} MB in binary COPY form; "
        f"median of {result.repetitions} alternating repetitions.",
        "",
        "| level | what | median s | rows/s | MB/s | × L0 | peak RSS MB | verified |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, level in result.levels.items():
        seconds = level.median_seconds
        note = f" (sample of {level.sampled_rows:,} rows, scaled)" if level.sampled_rows else ""
        lines.append(
            f"| {name} | {_cell(level.description)}{note} | {seconds:.2f} | {result.tables_rows / seconds:,.0f} | "
            f"{result.bytes_moved / 1e6 / seconds:.1f} | {result.ratio_to_pipe(name):.2f} | "
            f"{max(level.peak_rss_bytes) / 2**20:.0f} | {'' if level.verified is None else ('yes' if level.verified else 'NO')} |"
        )
    ratio = result.ratio_to_pipe("L2")
    lines += [
        "",
        f"Target: L2 within 3× of L0 — {'met' if ratio <= 3 else 'missed'} ({ratio:.2f}×).",
    ]
    markdown_path = directory / "ingest.md"
    markdown_path.write_text("\n".join(lines) + "\n")
    return json_path, markdown_path
