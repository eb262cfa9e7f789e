"""`haven bench ingest|queries|pipeline|faults`: ratios against baselines of the same run."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from haven.cli.base import bench_app, console
from haven.errors import HavenError
from haven.settings import Engine, Settings, get_settings
from haven.source import simulator
from haven.warehouse import endpoints as warehouse


@bench_app.command("ingest")
def bench_ingest(
    scale: Annotated[
        float, typer.Option(help="Scale factor of the simulated source to measure on.")
    ] = 1.0,
    repetitions: Annotated[
        int, typer.Option(help="Alternating repetitions of L0 and L2 (medians).")
    ] = 3,
) -> None:
    """Ingest speed: binary COPY pipe (L0), dlt defaults (L1), haven ingest (L2), same run."""
    from haven.bench import ingest as bench

    if repetitions < 1:
        raise HavenError(f"--repetitions must be at least 1, got {repetitions}.")
    settings = get_settings()
    with console.status("benchmarking ingest") as status:
        result = bench.run(
            settings,
            scale=scale,
            repetitions=repetitions,
            progress=lambda step: status.update(step),
        )
    machine = _machine()
    json_path, markdown_path = bench.write_report(result, settings.home / "bench", machine)
    table = Table(
        title=f"ingest, SF {result.scale}: {result.tables_rows:,} rows, {result.bytes_moved / 1e6:.0f} MB ({machine})"
    )
    for column in ("level", "median s", "rows/s", "MB/s", "× L0", "peak RSS MB", "verified"):
        table.add_column(column, justify="left" if column == "level" else "right")
    for name, level in result.levels.items():
        seconds = level.median_seconds
        label = f"{name} {bench.SHORT_NAMES[name]}" + (" (sampled)" if level.sampled_rows else "")
        table.add_row(
            label,
            f"{seconds:.2f}",
            f"{result.tables_rows / seconds:,.0f}",
            f"{result.bytes_moved / 1e6 / seconds:.1f}",
            f"{result.ratio_to_pipe(name):.2f}",
            f"{max(level.peak_rss_bytes) / 2**20:.0f}",
            "" if level.verified is None else ("yes" if level.verified else "NO"),
        )
    console.print(table)
    console.print(f"reports: {json_path} {markdown_path}", highlight=False, soft_wrap=True)


@bench_app.command("queries")
def bench_queries(
    seconds: Annotated[int, typer.Option(help="pgbench seconds per query and phase.")] = 3,
    transactions: Annotated[
        int | None,
        typer.Option(help="pgbench transactions per query and phase, instead of --seconds."),
    ] = None,
) -> None:
    """Analyst query suite with pgbench: p50/p95/p99 with and without the mart indexes, same run."""
    from haven.bench import queries as bench

    bench.pgbench_length(seconds, transactions)  # before anything starts
    settings = get_settings()
    endpoints = warehouse.up(settings)
    scale = _current_scale(endpoints)
    with console.status("benchmarking queries") as status:
        result = bench.run(
            settings,
            endpoints,
            scale=scale,
            seconds=seconds,
            transactions=transactions,
            progress=lambda step: status.update(step),
        )
    machine = _machine()
    json_path, markdown_path = bench.write_report(result, settings.home / "bench", machine)
    table = Table(title=f"analyst queries, SF {scale} ({machine}); ms")
    for column in ("query", "p50", "p95", "p99", "p95 no index", "faster"):
        table.add_column(column, justify="left" if column == "query" else "right")
    for query in result.queries:
        table.add_row(
            query.name,
            f"{query.indexed.p50_ms:.2f}",
            f"{query.indexed.p95_ms:.2f}",
            f"{query.indexed.p99_ms:.2f}",
            f"{query.unindexed.p95_ms:.2f}",
            f"{query.improvement:.0%}",
        )
    console.print(table)
    console.print(
        f"suite {result.suite_improvement:.0%} faster with indexes; {len(result.indexes_used)}/{result.indexes_total} "
        f"mart indexes used; reports: {json_path} {markdown_path}",
        highlight=False,
        soft_wrap=True,
    )


@bench_app.command("pipeline")
def bench_pipeline(
    scale: Annotated[str, typer.Option(help="Comma-separated scale factors, e.g. 1,10.")] = "1,10",
    engine: Annotated[
        Engine,
        typer.Option(help="spark: a full run on PostgreSQL and on Spark clusters of --workers."),
    ] = Engine.postgres,
    workers: Annotated[
        str, typer.Option(help="With --engine spark: comma-separated worker counts, e.g. 1,2.")
    ] = "1,2",
) -> None:
    """A full run, the runs after a month's first day, a day and an hour, and a run with no
    change, per scale: each step's wall time, the dbt nodes run, the build's time per layer
    with the rows written, ratios to full.
    With --engine spark: the full run on PostgreSQL and on a Spark cluster of each size, with
    per-stage times, rows/s per core and the speed-up from the smallest cluster."""
    try:
        scales = [float(part) for part in scale.split(",") if part.strip()]
    except ValueError:
        raise HavenError(f"--scale must be numbers separated by commas, got {scale!r}.") from None
    if not scales:
        raise HavenError("--scale needs at least one scale factor, for example --scale 1,10.")
    from haven.bench import pipeline as bench  # after the checks: it takes seconds to import

    settings = get_settings()
    if engine is Engine.spark:
        _bench_scaling(settings, scales, workers)
        return
    with console.status("benchmarking the pipeline") as status:
        result = bench.run(settings, scales, progress=lambda step: status.update(step))
    machine = _machine()
    json_path, markdown_path = bench.write_report(result, settings.home / "bench", machine)
    console.print(markdown_path.read_text(), highlight=False, soft_wrap=True)
    console.print(f"reports: {json_path} {markdown_path}", highlight=False, soft_wrap=True)


def _bench_scaling(settings: Settings, scales: list[float], workers: str) -> None:
    from haven.warehouse import spark

    try:
        sizes = [int(part) for part in workers.split(",") if part.strip()]
    except ValueError:
        raise HavenError(
            f"--workers must be whole numbers separated by commas, got {workers!r}."
        ) from None
    if not sizes:
        raise HavenError("--workers needs at least one worker count, for example --workers 1,2.")
    for size in sizes:
        spark.check_workers(size)
    if spark.configured(settings) is not None:
        raise HavenError(
            "haven bench pipeline --engine spark starts local clusters of each size; unset"
            " HAVEN_SPARK_HOST to run it (time `haven build --engine spark` on your cluster)."
        )
    spark.java_home()
    from haven.bench import scaling  # after the checks: it takes seconds to import

    results = []
    with console.status("benchmarking PostgreSQL and Spark") as status:
        for scale in scales:
            results.append(
                scaling.run(settings, scale, sizes, progress=lambda step: status.update(step))
            )
    json_path, markdown_path = scaling.write_report(results, settings.home / "bench", _machine())
    console.print(markdown_path.read_text(), highlight=False, soft_wrap=True)
    console.print(f"reports: {json_path} {markdown_path}", highlight=False, soft_wrap=True)


@bench_app.command("faults")
def bench_faults(
    runs: Annotated[int, typer.Option(help="Faulted runs of the elt flow.")] = 200,
    scale: Annotated[float, typer.Option(help="Scale factor of the simulated source.")] = 0.01,
    fault_share: Annotated[
        float, typer.Option(help="Share of connections dropped, reset or stalled (0 to 1).")
    ] = 0.01,
    kills: Annotated[
        int, typer.Option(help="Runs in which the warehouse is killed (SIGKILL) part way.")
    ] = 3,
    stall_seconds: Annotated[
        float, typer.Option(help="How long a stalled connection waits.")
    ] = 2.0,
    baseline_runs: Annotated[
        int, typer.Option(help="Clean runs first, the baseline the run times are compared with.")
    ] = 3,
    seed: Annotated[int, typer.Option(help="Same seed, same faults.")] = 1,
) -> None:
    """The flow N times through a TCP fault proxy, the warehouse killed a few times: runs
    succeeded, retries, and after every run raw against the source and the marts against a full
    rebuild."""
    from flows.server import use_prefect_server
    from haven.bench import faults as bench

    settings = get_settings()
    bench.check_options(
        settings,
        runs=runs,
        kills=kills,
        baseline_runs=baseline_runs,
        fault_share=fault_share,
        stall_seconds=stall_seconds,
    )
    use_prefect_server(settings)
    with console.status("benchmarking faults") as status:
        result = bench.run(
            settings,
            runs=runs,
            scale=scale,
            fault_share=fault_share,
            stall_seconds=stall_seconds,
            kills=kills,
            baseline_runs=baseline_runs,
            seed=seed,
            progress=lambda step: status.update(step),
        )
    json_path, markdown_path = bench.write_report(result, settings.home / "bench", _machine())
    console.print(markdown_path.read_text(), highlight=False, soft_wrap=True)
    console.print(f"reports: {json_path} {markdown_path}", highlight=False, soft_wrap=True)


def _current_scale(endpoints: object) -> str:

    try:
        return f"{simulator.source_state(endpoints).scale:g}"  # type: ignore[arg-type]
    except HavenError:
        return "unknown"


def _machine() -> str:
    import os

    import psutil

    return f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB"
