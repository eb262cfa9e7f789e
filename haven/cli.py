"""``haven``: the one front door. Each command is a thin wrapper over a module that does the work."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from haven.errors import HavenError
from haven.settings import Engine, Settings, get_settings, setting_problem
from haven.source import simulator
from haven.warehouse import endpoints as warehouse
from haven.warehouse.connection import connect, redact
from haven.warehouse.embedded import BIN_DIRECTORY
from haven.warehouse.endpoints import ANALYST
from haven.warehouse.readiness import check as check_readiness
from haven.warehouse.readiness import warehouse_warnings

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
        bool,
        typer.Option(
            "--json",
            help="Print one JSON line with the URLs, passwords included (for programs; the"
            " only output of up that holds them).",
        ),
    ] = False,
    engine: Annotated[
        Engine,
        typer.Option(help="postgres, or spark to also start the local Spark cluster."),
    ] = Engine.postgres,
    workers: Annotated[
        int | None,
        typer.Option(help="Workers of the local Spark cluster (default HAVEN_SPARK_WORKERS, 2)."),
    ] = None,
) -> None:
    """Start (or reuse) the warehouse, the source and the local Prefect server; apply the roles.
    With --engine spark also the Spark cluster (master, workers, Thrift server) on 127.0.0.1."""
    from flows.server import api_url, ui_url
    from haven.warehouse import spark

    settings = get_settings()
    if engine is Engine.spark:
        spark.check_can_start(settings, workers)
    endpoints = warehouse.up(settings)
    prefect = api_url(settings)
    cluster = spark.up(settings, workers) if engine is Engine.spark else None
    if any(settings.pending_runs_dir.glob("*.pickle")):  # history imports dlt: only then
        from haven.ops.history import record_kept_runs

        kept = record_kept_runs(settings, endpoints)
        console.print(f"recorded {len(kept)} run(s) that ended while the warehouse was down")
    readiness = check_readiness(settings, endpoints)
    if as_json:
        print(
            json.dumps(
                {
                    "warehouse_url": endpoints.warehouse_url,
                    "source_url": endpoints.source_url,
                    "prefect_api_url": prefect,
                    **(
                        {"spark_thrift": f"{cluster.host}:{cluster.port}"}
                        if cluster is not None
                        else {}
                    ),
                    "problems": readiness.problems,
                    "warnings": readiness.warnings,
                }
            )
        )
        _fail_on_problems(readiness.problems)
        return
    kind = "embedded PostgreSQL" if endpoints.embedded else "configured PostgreSQL"
    console.print(f"[green]warehouse[/] ({kind}): {redact(endpoints.warehouse_url)}")
    console.print(f"[green]source[/]: {redact(endpoints.source_url)}")
    where = "configured" if settings.prefect_api_url else "local server"
    console.print(f"[green]prefect[/] ({where}): {ui_url(prefect)}", highlight=False)
    if cluster is not None:
        state = spark.local_cluster(settings).status() if cluster.local else None
        detail = f" ({state.workers} workers; UI {state.master_ui})" if state else " (configured)"
        console.print(
            f"[green]spark[/]: thrift://{cluster.host}:{cluster.port}{detail}", highlight=False
        )
    for warning in readiness.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    _fail_on_problems(readiness.problems)


def _fail_on_problems(problems: list[str]) -> None:
    """Every gap a run would stop on, one sentence each; the last one ends the command."""
    for problem in problems[:-1]:
        console.print(f"[red]error:[/] {problem}", highlight=False, soft_wrap=True)
    if problems:
        raise HavenError(problems[-1])


@app.command()
def down() -> None:
    """Stop the embedded warehouse and the local Prefect server (configured servers are never
    touched)."""
    from flows.server import local_server

    settings = get_settings()
    if warehouse.embedded_server(settings).stop():
        console.print("embedded warehouse stopped")
    else:
        console.print("embedded warehouse was not running")
    if local_server(settings).stop():
        console.print("local Prefect server stopped")
    else:
        console.print("local Prefect server was not running")
    from haven.warehouse.spark import local_cluster

    if local_cluster(settings).stop():
        console.print("local Spark cluster stopped")


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
    if replace and created and _raw_has_landed(endpoints):
        console.print(
            "raw_app still holds the previous source: run `haven run --full-refresh` to reload"
            " it (its deleted keys are kept as deletions; the histories are kept, not rebuilt)."
        )


def _raw_has_landed(endpoints: warehouse.Endpoints) -> bool:
    """Whether an ingest has landed anything in the warehouse's raw_app."""
    with connect(endpoints.warehouse_url, purpose="warehouse") as conn:
        row = conn.execute(
            "select exists (select from pg_tables where schemaname = 'raw_app')"
        ).fetchone()
        return bool(row and row[0])


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
) -> None:
    """Land every application table in raw_app (incremental, merge on key, hard deletes marked);
    with --engine spark also in the Spark lake, as an append log of parquet versions."""
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
                "re-synced: every row loaded again" if row.resynced else "",
                f"{row.kept_deleted:,} deletion mark(s) kept" if row.kept_deleted else "",
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
def env() -> None:
    """Print `export` lines so plain `dbt` and `prefect` commands use the same warehouse and
    Prefect server: eval "$(haven env)". They hold the transformer's password (for programs:
    pipe them into eval, not into a log)."""
    import shlex

    from flows.server import local_server
    from haven.transform.dbt import dbt_environment

    settings = get_settings()
    endpoints = warehouse.up(settings)
    variables = dbt_environment(settings, endpoints)
    prefect = settings.prefect_api_url or local_server(settings).status().url
    if prefect:
        variables["PREFECT_API_URL"] = prefect
    from haven.warehouse import spark

    cluster = spark.current(settings)
    if cluster is not None:  # plain `dbt --target spark` masks with the same key
        spark.store_pii_key(settings, endpoints, cluster)
        variables.update(spark.dbt_environment(cluster))
    for key, value in variables.items():
        print(f"export {key}={shlex.quote(value)}")


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


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
    runs: Annotated[int, typer.Option(help="How many recent runs to show.")] = 10,
) -> None:
    """Recent runs, freshness, failing tests, quarantine counts and reconciliation differences."""
    if runs < 1:  # before the imports: Prefect and dlt take seconds to import
        raise HavenError(f"--runs must be at least 1, got {runs}.")
    from flows.server import local_server, ui_url
    from haven.ops.status import collect
    from haven.warehouse.connection import connect
    from haven.warehouse.endpoints import TRANSFORMER

    settings = get_settings()
    endpoints = warehouse.up(settings)
    with connect(endpoints.role_url(TRANSFORMER), purpose="warehouse") as conn:
        data = collect(conn, runs=runs)
        data["warnings"] = warehouse_warnings(conn)
    prefect = settings.prefect_api_url or local_server(settings).status().url
    data["prefect"] = {
        "ui_url": ui_url(prefect) if prefect else None,
        "configured": bool(settings.prefect_api_url),
    }
    from haven.warehouse import spark

    cluster = spark.current(settings)
    data["spark"] = (
        {"thrift": f"{cluster.host}:{cluster.port}", "local": cluster.local} if cluster else None
    )
    if as_json:
        print(json.dumps(data, default=str))
        return
    out = Console()
    out.print(
        f"prefect: {ui_url(prefect)}" if prefect else "prefect: not running (`haven up` starts it)",
        highlight=False,
    )
    if cluster is not None:
        out.print(f"spark: thrift://{cluster.host}:{cluster.port}", highlight=False)
    for title, headers, rows in _status_sections(data):
        if not rows:
            out.print(f"{title}: none")
            continue
        table = Table(title=title, title_justify="left", expand=False, pad_edge=False)
        for header, justify in headers:
            table.add_column(header, justify=justify, overflow="fold")  # type: ignore[arg-type]
        for row in rows:
            table.add_row(*row)
        out.print(table)
    for warning in data["warnings"]:
        out.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    out.print("all columns: haven status --json", highlight=False)


def _status_sections(
    data: dict[str, list[dict[str, object]]],
) -> list[tuple[str, list[tuple[str, str]], list[list[str]]]]:
    """What ``haven status`` prints: few, short columns, so each table fits 80 columns."""
    from haven.transform.dbt import node_name

    def text(value: object, template: str = "{}") -> str:
        return "" if value is None else template.format(value)

    left, right = "left", "right"
    return [
        (
            # each run's cost is in --json and the report; the monthly estimate is the one to watch
            "recent runs (times in UTC)",
            [
                ("started", left),
                ("engine", left),
                ("status", left),
                ("secs", right),
                ("rows", right),
                ("tests ok/fail", right),
                ("month $", right),
            ],
            [
                [
                    f"{run['started_at']:%m-%d %H:%M}",  # type: ignore[str-format]
                    str(run["engine"]),
                    str(run["status"]),
                    text(run["wall_seconds"]),
                    text(run["rows_loaded"], "{:,}"),
                    f"{text(run['tests_passed'])}/{text(run['tests_failed'])}",
                    text(run["monthly_estimate_usd"], "{:.2f}"),
                ]
                for run in data["runs"]
            ],
        ),
        (
            "source freshness (latest run)",
            [("table", left), ("lag min", right), ("status", left)],
            [
                [
                    str(row["source_table"]).removeprefix("source.clutter_haven."),
                    text(row["lag_minutes"]),
                    str(row["status"]),
                ]
                for row in data["freshness"]
            ],
        ),
        (
            "failing tests (latest run)",
            [("test", left), ("status", left), ("message", left)],
            [
                [node_name(str(row["unique_id"])), str(row["status"]), text(row["message"])]
                for row in data["failing_tests"]
            ],
        ),
        (
            "quarantine",
            [("table", left), ("rows", right)],
            [[str(row["source_table"]), f"{row['rows']:,}"] for row in data["quarantine"]],
        ),
        (
            "reconciliation differences (latest run)",
            [
                ("table", left),
                ("source", right),
                ("raw", right),
                ("staged", right),
                ("quar.", right),
                ("Δ rows", right),
                ("Δ amount", right),
            ],
            [
                [
                    str(row["table_name"]),
                    *(
                        text(row[column])
                        for column in (
                            "source_rows",
                            "raw_rows",
                            "staged_rows",
                            "quarantined_rows",
                            "row_difference",
                            "amount_difference",
                        )
                    ),
                ]
                for row in data["reconciliation_differences"]
            ],
        ),
    ]


@app.command()
def report() -> None:
    """Write the self-contained HTML report of the ops history and print its path."""
    from haven.ops import report as html_report
    from haven.warehouse.connection import connect
    from haven.warehouse.endpoints import TRANSFORMER

    settings = get_settings()
    endpoints = warehouse.up(settings)
    with connect(endpoints.role_url(TRANSFORMER), purpose="warehouse") as conn:
        from haven.ops.history import ensure_schema

        ensure_schema(conn)
        path = html_report.write(conn, settings.report_path, budget_usd=settings.monthly_budget_usd)
    print(path)


@app.command()
def docs(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 picks a free one).")] = 8580,
    serve: Annotated[bool, typer.Option(help="Serve the site after generating it.")] = True,
) -> None:
    """Generate the dbt docs site and serve it on localhost."""
    from haven.ops.docs import generate, serve_directory

    if serve and port != 0:
        _check_port_free(port, option="--port")
    settings = get_settings()
    generate(settings, warehouse.up(settings))
    if serve:
        serve_directory(
            settings.dbt_target_dir,
            port,
            announce=lambda url: console.print(f"dbt docs: {url} (Ctrl-C stops)"),
        )


@app.command("serve")
def serve_deployments() -> None:
    """Serve the prefect.yaml deployments with their schedules from this process, on the local
    Prefect server (or PREFECT_API_URL's); Ctrl-C stops."""
    from flows.server import ui_url, use_prefect_server

    prefect = use_prefect_server(get_settings())  # before Prefect is imported
    from prefect import serve as prefect_serve

    from flows.deployments import release_from_work_pool, to_deployments

    deployments = to_deployments()
    for name in release_from_work_pool(deployments):
        console.print(
            f"{name} was registered for the work pool by `prefect deploy`; it is served from "
            "here now (run `prefect deploy --all` again to hand it back to a worker)",
            highlight=False,
        )
    console.print(
        f"serving {', '.join(d.name for d in deployments)} (schedules from prefect.yaml); "
        f"runs appear in {ui_url(prefect)}",
        highlight=False,
    )
    prefect_serve(*deployments)


@app.command()
def mcp(
    http: Annotated[
        int | None,
        typer.Option("--http", help="Serve streamable HTTP on 127.0.0.1:PORT instead of stdio."),
    ] = None,
) -> None:
    """The MCP server: an AI assistant's read-only window into analytics, ml and ops."""
    if http is not None:  # before the imports, which take seconds
        _check_port_free(http, option="--http")
    from haven.mcp_server.server import build_server
    from haven.mcp_server.tools import Connections
    from haven.warehouse.endpoints import MCP, TRANSFORMER

    settings = get_settings()

    def locate() -> tuple[str, str | None]:
        endpoints = warehouse.up(settings)
        return endpoints.role_url(MCP), endpoints.role_url(TRANSFORMER)

    try:
        connections = Connections(*locate())
    except HavenError as error:  # start anyway: the client sees the sentence on every call
        console.print(
            f"[yellow]warning:[/] {error} The MCP server starts anyway and answers every tool "
            "call with this until the warehouse is back.",
            highlight=False,
            soft_wrap=True,
        )
        connections = Connections(locate=locate)
    server = build_server(connections)
    if http is None:
        server.run("stdio")
    else:
        console.print(f"MCP server on http://127.0.0.1:{http}/mcp", highlight=False)
        server.run("streamable-http", host="127.0.0.1", port=http)


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
    seconds: Annotated[float, typer.Option(help="pgbench seconds per query and phase.")] = 3.0,
) -> None:
    """Analyst query suite with pgbench: p50/p95/p99 with and without the mart indexes, same run."""
    from haven.bench import queries as bench

    settings = get_settings()
    endpoints = warehouse.up(settings)
    scale = _current_scale(endpoints)
    with console.status("benchmarking queries") as status:
        result = bench.run(
            settings,
            endpoints,
            scale=scale,
            seconds=seconds,
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
    """A full run, an incremental run after a one-day tick and a run with no change, per scale:
    each step's wall time, the build's time per layer with the rows written, ratios to full.
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
    from haven.source import simulator

    try:
        return f"{simulator.source_state(endpoints).scale:g}"  # type: ignore[arg-type]
    except HavenError:
        return "unknown"


def _machine() -> str:
    import os

    import psutil

    return f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB"


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


def _check_port_free(port: int, *, option: str) -> None:
    """A port the user gave: in range and free on 127.0.0.1, or one sentence saying which."""
    import socket

    if not 1 <= port <= 65535:
        raise HavenError(f"{option} must be a port between 1 and 65535, got {port}.")
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise HavenError(
                f"Port {port} on 127.0.0.1 is already in use; choose another with {option}."
            ) from None


def main() -> None:
    """Entry point: user errors become one red sentence and exit code 1, never a traceback."""
    try:
        app()
    except HavenError as error:
        console.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except ValidationError as error:  # a HAVEN_* variable pydantic-settings could not read
        console.print(f"[red]error:[/] {setting_problem(error)}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
