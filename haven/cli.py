"""``haven``: the one front door. Each command is a thin wrapper over a module that does the work."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from haven.errors import HavenError
from haven.settings import get_settings
from haven.source import simulator
from haven.warehouse import endpoints as warehouse
from haven.warehouse.connection import redact
from haven.warehouse.embedded import BIN_DIRECTORY

app = typer.Typer(
    help="Clutter Haven analytics warehouse: embedded PostgreSQL, simulated source, dlt ingestion.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
source_app = typer.Typer(
    help="The simulated Clutter Haven application database.", no_args_is_help=True
)
app.add_typer(source_app, name="source")
bench_app = typer.Typer(
    help="Benchmarks: ratios against baselines measured in the same run.", no_args_is_help=True
)
app.add_typer(bench_app, name="bench")

console = Console(stderr=True)


@app.command()
def up(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON line with the URLs.")
    ] = False,
) -> None:
    """Start (or reuse) the warehouse and the source, and apply the warehouse roles."""
    endpoints = warehouse.up(get_settings())
    if as_json:
        print(
            json.dumps(
                {"warehouse_url": endpoints.warehouse_url, "source_url": endpoints.source_url}
            )
        )
        return
    kind = "embedded PostgreSQL" if endpoints.embedded else "configured PostgreSQL"
    console.print(f"[green]warehouse[/] ({kind}): {endpoints.warehouse_url}")
    console.print(f"[green]source[/]: {endpoints.source_url}")


@app.command()
def down() -> None:
    """Stop the embedded warehouse (a configured server is never touched)."""
    server = warehouse.embedded_server(get_settings())
    if server.stop():
        console.print("embedded warehouse stopped")
    else:
        console.print("embedded warehouse was not running")


@source_app.command("init")
def source_init(
    scale: Annotated[float, typer.Option(help="Scale factor: 1 is about a million rows.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Same seed, same data.")] = 42,
    defect_rate: Annotated[
        float, typer.Option(help="Share of rows damaged per defect kind (recorded in sim.defects).")
    ] = 0.0,
    replace: Annotated[bool, typer.Option(help="Drop an existing simulation first.")] = False,
) -> None:
    """Create the simulated application database (a no-op when it already exists as asked)."""
    endpoints = warehouse.up(get_settings())
    started = time.perf_counter()
    with console.status("creating the source") as status:
        source, created = simulator.init(
            endpoints,
            scale=scale,
            seed=seed,
            defect_rate=defect_rate,
            replace=replace,
            progress=lambda step: status.update(step),
        )
    elapsed = time.perf_counter() - started
    verb = (
        f"created in {elapsed:.1f} s" if created else "already there (pass --replace to regenerate)"
    )
    console.print(
        f"source SF {source.scale} seed {source.seed}: {sum(source.rows.values()):,} rows in "
        f"{len(source.rows)} tables, {verb}; clock {source.clock:%Y-%m-%d}"
    )


@source_app.command("tick")
def source_tick(
    days: Annotated[int, typer.Option(help="Simulated days to advance.")] = 1,
    defect_rate: Annotated[
        float | None, typer.Option(help="Defect rate for the new rows (default: the init rate).")
    ] = None,
) -> None:
    """Advance the application in time: sign-ups, orders, status changes, deletes, late commits."""
    endpoints = warehouse.up(get_settings())
    started = time.perf_counter()
    with console.status("advancing the source") as status:
        before, after = simulator.tick(
            endpoints, days=days, defect_rate=defect_rate, progress=lambda step: status.update(step)
        )
    elapsed = time.perf_counter() - started
    changed = sum(after.rows.values()) - sum(before.rows.values())
    console.print(
        f"source advanced {days} day(s) to {after.clock:%Y-%m-%d} in {elapsed:.1f} s "
        f"({changed:+,} rows net)"
    )


@app.command()
def ingest(
    full_refresh: Annotated[
        bool,
        typer.Option(help="Drop raw_app's tables and incremental state, then reload everything."),
    ] = False,
) -> None:
    """Land every application table in raw_app (incremental, merge on key, hard deletes marked)."""
    from ingestion.pipeline import ingest as run_ingest  # dlt is slow to import; only here

    settings = get_settings()
    endpoints = warehouse.up(settings)
    with console.status("ingesting") as status:
        report = run_ingest(
            settings,
            endpoints,
            full_refresh=full_refresh,
            progress=lambda step: status.update(step),
        )
    table = Table(title=f"raw_app after ingest (load {report.load_id or 'none'})")
    for column in ("table", "extracted", "loaded", "hard deletes", "notes"):
        table.add_column(
            column, justify="right" if column in {"extracted", "loaded", "hard deletes"} else "left"
        )
    for row in report.tables.values():
        notes = row.problem or (
            f"new column(s): {', '.join(row.new_columns)}" if row.new_columns else ""
        )
        table.add_row(
            row.table,
            f"{row.extracted:,}",
            f"{row.loaded:,}",
            f"{row.deleted:,}",
            notes,
            style="red" if row.problem else None,
        )
    console.print(table)
    console.print(
        f"{report.loaded_rows:,} rows loaded in {report.seconds:.1f} s into "
        f"{redact(endpoints.warehouse_url)} schema raw_app"
    )
    if endpoints.embedded:
        console.print(
            f"query it: {BIN_DIRECTORY / 'psql'} '{endpoints.warehouse_url}'",
            highlight=False,
            soft_wrap=True,
        )
    for row in report.failed:
        console.print(f"[red]{row.table}[/]: {row.problem}", highlight=False)
    if report.failed:
        names = ", ".join(row.table for row in report.failed)
        raise HavenError(
            f"{len(report.failed)} table(s) were not loaded ({names}): {report.failed[0].problem}; fix the source and run `haven ingest` again."
        )


@app.command()
def build(
    select: Annotated[
        str | None, typer.Option(help="dbt node selection, as in dbt --select.")
    ] = None,
    full_refresh: Annotated[
        bool, typer.Option(help="Rebuild incremental models from scratch.")
    ] = False,
) -> None:
    """Run `dbt build` (seeds, models, snapshots, tests) as the transformer role and summarise it."""
    from haven.transform.dbt import dbt_args, dbt_environment, run_dbt

    settings = get_settings()
    endpoints = warehouse.up(settings)
    started = time.perf_counter()
    # dbt prints a line per node as it goes: that is the progress
    outcome = run_dbt(
        dbt_args("build", select=select, full_refresh=full_refresh),
        dbt_environment(settings, endpoints),
    )
    elapsed = time.perf_counter() - started
    counts = ", ".join(f"{count} {status}" for status, count in sorted(outcome.counts.items()))
    console.print(f"dbt build: {counts or 'nothing ran'} in {elapsed:.1f} s")
    for node in outcome.slowest():
        console.print(f"  slow: {node.name} {node.seconds:.1f} s", highlight=False)
    if outcome.failures:
        for node in outcome.failures:
            console.print(
                f"[red]{node.status}[/]: {node.name}: {node.message}",
                highlight=False,
                soft_wrap=True,
            )
        names = ", ".join(node.name for node in outcome.failures[:5])
        raise HavenError(
            f"dbt build failed: {len(outcome.failures)} node(s) failed ({names}); see the lines above and target/run_results.json."
        )
    if not outcome.success:
        raise HavenError(f"dbt build failed: {outcome.error or 'see the dbt log in logs/dbt.log'}.")


@app.command()
def env() -> None:
    """Print `export` lines so plain `dbt` commands use the same warehouse: eval "$(haven env)"."""
    import shlex

    from haven.transform.dbt import dbt_environment

    settings = get_settings()
    for key, value in dbt_environment(settings, warehouse.up(settings)).items():
        print(f"export {key}={shlex.quote(value)}")


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


def _machine() -> str:
    import os

    import psutil

    return f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB"


def main() -> None:
    """Entry point: user errors become one red sentence and exit code 1, never a traceback."""
    try:
        app()
    except HavenError as error:
        console.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
