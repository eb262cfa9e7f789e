"""``haven``: the one front door. Each command is a thin wrapper over a module that does the work;
the commands live in one module per verb group, registered on import."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from haven.cli.base import app, console
from haven.errors import HavenError
from haven.settings import setting_problem

# importing a verb group registers its commands, in the order `haven --help` lists them
# isort: off
from haven.cli import services, pipeline, ops, source, bench  # noqa: E402, F401
# isort: on


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
