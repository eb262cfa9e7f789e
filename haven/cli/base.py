"""The ``haven`` application object, its sub-commands and the console every command writes to;
shared checks of user input."""

from __future__ import annotations

import typer
from rich.console import Console

from haven.errors import HavenError

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


def check_port_free(port: int, *, option: str) -> None:
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
