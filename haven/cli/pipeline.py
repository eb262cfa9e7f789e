"""The pipeline: `haven ingest`, `haven build` and `haven run`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from haven.cli.base import app, console
from haven.errors import HavenError
from haven.settings import Engine, Settings, get_settings
from haven.warehouse import endpoints as warehouse
from haven.warehouse.connection import redact
from haven.warehouse.embedded import BIN_DIRECTORY
from haven.warehouse.endpoints import ANALYST

if TYPE_CHECKING:
    from ingestion.app.values import ValueCheck


@app.command()
def ingest(
    full_refresh: Annotated[
        bool,
        typer.Option(help="Drop raw_app's tables and incremental state, then reload everything."),
    ] = False,
    engine: Annotated[
        Engine,
        typer.Option(help="spark: also append what changed to the Spark lake (raw_app tables)."),
    ] = Engine.postgres,
    resync: Annotated[
        list[str] | None,
        typer.Option(
            help="Load this table again whole, keeping its deletions (after a column was dropped,"
            " renamed or changed type in the source); repeat for several.",
        ),
    ] = None,
    repair: Annotated[
        bool,
        typer.Option(
            help="Compare every live row of raw_app with the source over every column and read"
            " the rows that differ again (an update that did not touch updated_at, say).",
        ),
    ] = False,
) -> None:
    """Land every application table in raw_app (incremental, merge on key, hard deletes marked)
    and compare the rows the ingest re-read with the source, value by value; with --engine spark
    also in the Spark lake, as an append log of parquet versions."""
    from ingestion.app.settings import TABLES
    from ingestion.pipeline import ingest as run_ingest  # dlt is slow to import; only here

    unknown = sorted(set(resync or ()) - {spec.name for spec in TABLES})
    if unknown:
        raise HavenError(
            f"--resync {unknown[0]}: no such application table; choose one of"
            f" {', '.join(spec.name for spec in TABLES)}."
        )
    settings = get_settings()
    if engine is Engine.spark:
        _check_lake(settings, full_refresh=full_refresh)
    endpoints = warehouse.up(settings)
    with console.status("ingesting") as status:
        report = run_ingest(
            settings,
            endpoints,
            full_refresh=full_refresh,
            resync=frozenset(resync or ()),
            values="all" if repair else "changed",
            repair=repair,
            progress=lambda step: status.update(step),
        )
    if report.recovered:
        console.print(report.recovered)
    table = Table(title=f"raw_app after ingest (load {report.load_id or 'none'})")
    for column in ("table", "extracted", "loaded", "hard deletes", "notes"):
        table.add_column(
            column, justify="right" if column in {"extracted", "loaded", "hard deletes"} else "left"
        )
    for row in report.tables.values():
        notes = row.problem or "; ".join(
            note
            for note in (
                f"new column(s): {', '.join(row.new_columns)}" if row.new_columns else "",
                f"widened: {', '.join(row.widened)}" if row.widened else "",
                "re-synced: every row loaded again" if row.resynced else "",
                f"{row.kept_deleted:,} deletion mark(s) kept" if row.kept_deleted else "",
                _value_note(row.values),
                row.note or "",
            )
            if note
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
            f"query it: {BIN_DIRECTORY / 'psql'} '{redact(endpoints.warehouse_url)}'",
            highlight=False,
            soft_wrap=True,
        )
    for row in report.failed:
        console.print(f"[red]{row.table}[/]: {row.problem}", highlight=False)
    differing = [row.table for row in report.tables.values() if row.values and row.values.differing]
    if differing:
        console.print(
            f"[yellow]warning:[/] raw_app's values differ from the source in {', '.join(differing)}"
            " (an update that did not touch updated_at?); run `haven ingest --repair`.",
            highlight=False,
            soft_wrap=True,
        )
    if report.failed:
        names = ", ".join(row.table for row in report.failed)
        raise HavenError(
            f"{len(report.failed)} table(s) were not loaded ({names}): {report.failed[0].problem}; fix the source and run `haven ingest` again."
        )
    if engine is Engine.spark:
        from haven.warehouse import spark
        from ingestion import lake

        cluster = spark.up(settings)
        with console.status("appending to the Spark lake"):
            landed = lake.export(settings, endpoints, cluster)
        console.print(
            f"{sum(landed.rows.values()):,} raw version(s) appended to the Spark lake in"
            f" {landed.seconds:.1f} s ({lake.lake_dir(settings)}), tables raw_app.* on"
            f" thrift://{cluster.host}:{cluster.port}",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def build(
    select: Annotated[
        str | None, typer.Option(help="dbt node selection, as in dbt --select.")
    ] = None,
    full_refresh: Annotated[
        bool, typer.Option(help="Rebuild incremental models from scratch.")
    ] = False,
    full_tests: Annotated[
        bool,
        typer.Option(help="Test every row, not only the rows this build changed."),
    ] = False,
    engine: Annotated[
        Engine,
        typer.Option(help="spark: build on the Spark cluster, from the lake (`--select` it)."),
    ] = Engine.postgres,
) -> None:
    """Run `dbt build` (seeds, models, snapshots, tests) as the transformer role and summarise it."""
    from haven.ops.reconcile import STAGED_TEST, explain_staged_difference
    from haven.transform.dbt import (
        SPARK_SELECTION,
        build_variables,
        dbt_args,
        dbt_environment,
        run_dbt,
        spark_environment,
    )

    settings = get_settings()
    if engine is Engine.spark:
        from haven.warehouse import spark

        spark.check_can_start(settings)
    endpoints = warehouse.up(settings)
    environment = (
        spark_environment(settings, endpoints)
        if engine is Engine.spark
        else dbt_environment(settings, endpoints)
    )
    started = time.perf_counter()
    # dbt prints a line per node as it goes: that is the progress
    outcome = run_dbt(
        dbt_args(
            "build",
            select=select,
            full_refresh=full_refresh,
            variables=build_variables(full_refresh=full_refresh, full_tests=full_tests),
            **(SPARK_SELECTION if engine is Engine.spark else {}),
        ),
        environment,
    )
    elapsed = time.perf_counter() - started
    counts = ", ".join(f"{count} {status}" for status, count in sorted(outcome.counts.items()))
    console.print(f"dbt build ({engine}): {counts or 'nothing ran'} in {elapsed:.1f} s")
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
        if engine is Engine.postgres and STAGED_TEST in {node.name for node in outcome.failures}:
            raise HavenError(
                f"dbt build failed: {len(outcome.failures)} node(s) failed ({names}); "
                f"{explain_staged_difference(endpoints)}."
            )
        raise HavenError(
            f"dbt build failed: {len(outcome.failures)} node(s) failed ({names}); see the lines above and target/run_results.json."
        )
    if not outcome.success:
        raise HavenError(f"dbt build failed: {outcome.error or 'see the dbt log in logs/dbt.log'}.")
    if select and not outcome.nodes:
        raise HavenError(
            f"--select {select!r} matches no model, seed, snapshot or test; "
            "check the name (`dbt ls` lists them)."
        )


@app.command()
def run(
    full_refresh: Annotated[
        bool, typer.Option(help="Reload raw and rebuild incremental models.")
    ] = False,
    docs: Annotated[bool, typer.Option(help="Also regenerate the dbt docs site.")] = False,
    full_tests: Annotated[
        bool,
        typer.Option(help="Test every row, not only the rows this run changed."),
    ] = False,
    engine: Annotated[
        Engine,
        typer.Option(help="spark: land raw in the lake too and build on the Spark cluster."),
    ] = Engine.postgres,
) -> None:
    """Run the whole pipeline once as the Prefect flow `elt` on the local Prefect server (or
    PREFECT_API_URL's), and say where to look."""
    from flows.server import ui_url, use_prefect_server

    settings = get_settings()
    if engine is Engine.spark:
        _check_lake(settings, full_refresh=full_refresh)
    prefect = use_prefect_server(settings)  # before Prefect is imported
    from flows.elt import elt

    started = time.perf_counter()
    try:
        summary = elt(full_refresh=full_refresh, docs=docs, full_tests=full_tests, engine=engine)
    except HavenError:
        raise
    except Exception as error:  # noqa: BLE001 - a flow failure the user should read in one line
        raise HavenError(
            f"The elt run failed: {str(error).splitlines()[0] if str(error) else type(error).__name__}."
        ) from None
    record = summary.run
    elapsed = time.perf_counter() - started
    tested = (
        f"tests {record.test_counts()['pass']} passed, {record.test_counts()['fail']} failed"
        if record.dbt_results.get("build") or record.status != "completed"
        else "build skipped: nothing changed since the last build"
    )
    console.print(
        f"elt {record.status} on {record.engine} in {elapsed:.1f} s: "
        f"{record.task_seconds:.1f} s inside tasks, "
        f"{elapsed - record.task_seconds:.1f} s orchestration; "
        f"{record.ingest.loaded_rows if record.ingest else 0:,} rows loaded; {tested}"
    )
    if record.cost:
        console.print(
            f"cost: {record.cost.cpu_seconds:.0f} CPU-s, {record.cost.bytes_moved / 1e6:.1f} MB moved, "
            f"warehouse {record.cost.warehouse_bytes / 1e6:.0f} MB; monthly estimate "
            f"${record.cost.monthly_estimate_usd:.2f} of ${record.cost.monthly_budget_usd:.2f}"
        )
    for alert in summary.alerts:
        console.print(f"[yellow]alert[/] {alert.kind}: {alert.message}", highlight=False)
    console.print(f"report:  {summary.report_path}", highlight=False, soft_wrap=True)
    run_page = f"/runs/flow-run/{record.flow_run_id}" if record.flow_run_id else ""
    console.print(f"prefect: {ui_url(prefect)}{run_page}", highlight=False, soft_wrap=True)
    console.print("status:  .venv/bin/haven status", highlight=False)
    console.print(
        "docs:    .venv/bin/haven docs   (serves the dbt docs site on localhost)", highlight=False
    )
    endpoints = warehouse.up(settings)
    if engine is Engine.spark:
        from haven.warehouse import spark

        built = spark.current(settings)  # printing where to look starts nothing
        where = f"thrift://{built.host}:{built.port}" if built else "the Spark cluster"
        console.print(
            f"data:    {where} (Spark: schemas analytics, ml);"
            f" runs in {redact(endpoints.warehouse_url)} (schema ops)",
            highlight=False,
        )
        return
    console.print(
        f"data:    {redact(endpoints.warehouse_url)} (schemas analytics, ml, ops)",
        highlight=False,
    )
    if endpoints.embedded:
        console.print(
            f"query it: {BIN_DIRECTORY / 'psql'} '{redact(endpoints.role_url(ANALYST))}'",
            highlight=False,
            soft_wrap=True,
        )


def _value_note(check: ValueCheck | None) -> str:
    """The ingest table's note on a table's value check: what differs, what was repaired."""
    if check is None:
        return ""
    notes = []
    if check.repaired:
        notes.append(f"{check.repaired:,} differing row(s) read again")
    if check.differing:
        notes.append(
            f"{len(check.differing):,} row(s) differ from the source (keys"
            f" {', '.join(check.sample_keys)})"
        )
    return "; ".join(notes)


def _check_lake(settings: Settings, *, full_refresh: bool) -> None:
    """Before anything lands (one sentence, nothing half-written): raw can be appended to the
    lake of the Spark cluster this run uses."""
    from haven.warehouse import spark
    from ingestion.lake import check_local

    spark.check_can_start(settings)
    check_local(settings)
    if full_refresh:
        raise HavenError(
            "--full-refresh with --engine spark is not supported yet; run `haven down`,"
            f" remove {settings.spark_dir} and ingest again to rebuild the lake."
        )
