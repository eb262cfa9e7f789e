"""`haven source init|tick`: the simulated application database."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from haven.cli.base import console, source_app
from haven.settings import get_settings
from haven.source import simulator
from haven.warehouse import endpoints as warehouse
from haven.warehouse.connection import connect


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
    days: Annotated[
        int | None, typer.Option(help="Simulated days to advance (the default: 1).")
    ] = None,
    hours: Annotated[
        int | None,
        typer.Option(help="Simulated hours to advance instead: an hour of a day's changes."),
    ] = None,
    defect_rate: Annotated[
        float | None, typer.Option(help="Defect rate for the new rows (default: the init rate).")
    ] = None,
) -> None:
    """Advance the application in time: sign-ups, orders, status changes, deletes, late commits."""
    steps, hourly = simulator.tick_steps(days, hours)  # before the warehouse starts
    endpoints = warehouse.up(get_settings())
    started = time.perf_counter()
    with console.status("advancing the source") as status:
        before, after = simulator.tick(
            endpoints,
            days=days,
            hours=hours,
            defect_rate=defect_rate,
            progress=lambda step: status.update(step),
        )
    elapsed = time.perf_counter() - started
    changed = sum(after.rows.values()) - sum(before.rows.values())
    unit = "hour" if hourly else "day"
    console.print(
        f"source advanced {steps} {unit}(s) to {after.clock:%Y-%m-%d %H:%M} in {elapsed:.1f} s "
        f"({changed:+,} rows net)"
    )
