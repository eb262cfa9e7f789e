"""The services a user starts and stops: `haven up`, `down`, `env` and `serve`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from haven.cli.base import app, console
from haven.errors import HavenError
from haven.settings import Engine, get_settings
from haven.warehouse import endpoints as warehouse
from haven.warehouse.connection import redact
from haven.warehouse.readiness import check as check_readiness


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
