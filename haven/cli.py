"""``haven``: the one front door. Each command is a thin wrapper over a module that does the work."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console

from haven.errors import HavenError
from haven.settings import get_settings
from haven.warehouse import endpoints as warehouse

app = typer.Typer(
    help="Clutter Haven analytics warehouse: embedded PostgreSQL, simulated source, dlt ingestion.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
source_app = typer.Typer(help="The simulated Clutter Haven application database.", no_args_is_help=True)
app.add_typer(source_app, name="source")

console = Console(stderr=True)


@app.command()
def up(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line with the URLs.")] = False,
) -> None:
    """Start (or reuse) the warehouse and the source, and apply the warehouse roles."""
    endpoints = warehouse.up(get_settings())
    if as_json:
        print(json.dumps({"warehouse_url": endpoints.warehouse_url, "source_url": endpoints.source_url}))
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
