"""A killed ingest never loses or duplicates a row: `haven ingest` is SIGKILLed at each phase of
dlt's work (during extract, after normalize, during load, between tables), for a full refresh and
for an incremental run, and the next plain `haven ingest` must leave raw equal to the source.

The phase is found by watching dlt's package directories, not by sleeping; after the kill the
frozen directories are checked again, and a run that had already moved past the phase is retried.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from haven.settings import Settings
from haven.source import simulator
from haven.warehouse.endpoints import Endpoints, up
from ingestion.app.settings import DELETED_AT, TABLES
from ingestion.pipeline import PIPELINE_NAME, ingest
from tests.python.conftest import HAVEN, copy_of, haven_environment, run_haven, settings_for
from tests.python.test_ingest import assert_raw_equals_source


def _files(directory: Path) -> list[str]:
    try:
        return [entry.name for entry in os.scandir(directory) if entry.is_file()]
    except FileNotFoundError:
        return []


def _packages(root: Path, *parts: str) -> list[Path]:
    try:
        return [Path(entry.path) for entry in os.scandir(root.joinpath(*parts)) if entry.is_dir()]
    except FileNotFoundError:
        return []


def _extracting(root: Path) -> bool:
    """dlt has opened a package for the extracted files and not committed it yet."""
    return not _packages(root, "normalize", "extracted") and any(
        _packages(temp) for temp in _packages(root, "normalize") if temp.name != "extracted"
    )


def _normalized_unloaded(root: Path) -> bool:
    """A normalized package waits and no job of it has started."""
    return any(
        _files(package / "new_jobs")
        and not _files(package / "started_jobs")
        and not _files(package / "completed_jobs")
        for package in _packages(root, "load", "normalized")
    )


def _loading_first_table(root: Path) -> bool:
    """Jobs are running and none has finished."""
    return any(
        _files(package / "started_jobs") and not _files(package / "completed_jobs")
        for package in _packages(root, "load", "normalized")
    )


def _between_tables(root: Path) -> bool:
    """Some tables are loaded, others still wait."""
    return any(
        any(not name.startswith("_dlt") for name in _files(package / "completed_jobs"))
        and (_files(package / "new_jobs") or _files(package / "started_jobs"))
        for package in _packages(root, "load", "normalized")
    )


PHASES: dict[str, Callable[[Path], bool]] = {
    "during extract": _extracting,
    "after normalize": _normalized_unloaded,
    "during load": _loading_first_table,
    "between tables": _between_tables,
}


def kill_at(phase: Callable[[Path], bool], dlt_dir: Path, args: list[str], env: dict) -> bool:
    """Run ``haven ingest`` and SIGKILL it as soon as ``phase`` holds; True when the frozen
    directories show the process really died in that phase."""
    process = subprocess.Popen(
        [HAVEN, "ingest", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if phase(dlt_dir):
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return phase(dlt_dir)
            # a millisecond between looks: spinning took a core from the process it watches
            time.sleep(0.001)
        return False
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _assert_no_duplicate_live_keys(warehouse_url: str) -> None:
    with psycopg.connect(warehouse_url) as raw:
        for spec in TABLES:
            live = f"where {DELETED_AT} is null" if spec.mutable else ""
            duplicated = raw.execute(
                f"select count(*) - count(distinct id) from raw_app.{spec.name} {live}"
            ).fetchone()[0]
            assert duplicated == 0, f"raw_app.{spec.name} holds {duplicated} duplicated live rows"


@pytest.mark.parametrize("phase", list(PHASES))
@pytest.mark.parametrize("mode", ["full refresh", "incremental"])
def test_killed_ingest_is_recovered_by_the_next_one(
    haven_home: Path, loaded_source: Settings, mode: str, phase: str
):
    name = f"kill_{mode.split()[0]}_{phase.split()[-1]}"
    settings, endpoints = copy_of(loaded_source, name)
    databases = {
        "HAVEN_WAREHOUSE_DATABASE": settings.warehouse_database,
        "HAVEN_SOURCE_DATABASE": settings.source_database,
    }
    env = haven_environment(databases, haven_home)
    args = ["--full-refresh"] if mode == "full refresh" else []
    for _attempt in range(5):
        # hard deletes raw has not seen yet: the full refresh must keep them too
        simulator.tick(endpoints, days=2)
        landed = raw_keys(endpoints.warehouse_url)
        if kill_at(PHASES[phase], settings.dlt_dir / PIPELINE_NAME, args, env):
            break
        # the process finished or moved past the phase before the signal landed: try again
        assert not ingest(settings, endpoints).failed
    else:
        pytest.fail(f"haven ingest was never caught {phase}")

    rerun = run_haven("ingest", env=databases, home=haven_home)
    assert rerun.returncode == 0, rerun.stderr
    assert "Traceback" not in rerun.stderr
    if phase != "during extract":
        assert "recovered an interrupted ingest" in rerun.stdout + rerun.stderr
    _assert_no_duplicate_live_keys(endpoints.warehouse_url)
    assert_raw_equals_source(endpoints)
    assert_raw_marks_every_deletion(endpoints, landed)
    again = ingest(settings, endpoints)
    assert again.recovered is None
    assert again.loaded_rows == 0, {t: r.loaded for t, r in again.tables.items() if r.loaded}


def raw_keys(warehouse_url: str) -> dict[str, set[int]]:
    """Every key raw holds, live or marked deleted, per mutable table (none for a table not
    landed, or dropped by a full refresh that was killed)."""
    keys: dict[str, set[int]] = {}
    with psycopg.connect(warehouse_url) as raw:
        for spec in TABLES:
            if (
                spec.mutable
                and raw.execute(
                    "select to_regclass(%s) is not null", (f"raw_app.{spec.name}",)
                ).fetchone()[0]
            ):
                keys[spec.name] = {
                    row[0] for row in raw.execute(f"select id from raw_app.{spec.name}")
                }
    return keys


def assert_raw_marks_every_deletion(endpoints: Endpoints, landed: dict[str, set[int]]) -> None:
    """Each row the simulator deleted (its own record) that had ever reached raw (``landed``,
    taken before the ingest under test) is in raw exactly once, marked deleted."""
    deleted = simulator.deletions(endpoints)
    assert deleted, "the ticks deleted rows"
    with psycopg.connect(endpoints.warehouse_url) as raw:
        for table, keys in deleted.items():
            expected = keys & landed.get(table, set())
            rows = raw.execute(
                f"select id, count(*), count({DELETED_AT}) from raw_app.{table}"
                " where id = any(%s) group by id",
                (list(keys),),
            ).fetchall()
            marked = {key for key, versions, marks in rows if versions == marks == 1}
            assert marked >= expected, (
                f"raw_app.{table} lost the deletion of {sorted(expected - marked)[:5]}"
            )
            assert {key for key, *_ in rows} <= keys


@pytest.fixture(scope="module")
def loaded_source(haven_home: Path) -> Settings:
    """A small source, fully loaded once, so an incremental run under test has a raw to extend;
    each test works on its own copy (``copy_of``)."""
    settings = settings_for(haven_home, "recovery_template")
    endpoints = up(settings)
    simulator.init(endpoints, scale=0.03, seed=5, replace=True)
    assert not ingest(settings, endpoints, full_refresh=True).failed
    return settings


def test_loads_that_keep_failing_lose_no_appended_row(
    loaded_source: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fault benchmark's case: a load fails after its extract moved dlt's cursors, the next
    run's recovery fails too and discards the package (and the rows it had appended). The
    append-only table must still get every row once the warehouse answers again."""
    import dlt
    from dlt.pipeline.exceptions import PipelineStepFailed

    from haven.errors import HavenError

    settings, endpoints = copy_of(loaded_source, "failing_loads")
    simulator.tick(endpoints, days=1)
    real_load = dlt.Pipeline.load
    failures = {"left": 2}

    def flaky_load(self: dlt.Pipeline, *args: object, **kwargs: object) -> object:
        if failures["left"]:
            failures["left"] -= 1
            raise PipelineStepFailed(self, "load", None, ConnectionError("server closed"), None)  # type: ignore[arg-type]
        return real_load(self, *args, **kwargs)

    monkeypatch.setattr(dlt.Pipeline, "load", flaky_load)
    with pytest.raises(HavenError, match="failed at the load step"):
        ingest(settings, endpoints)
    # the recovery's load fails too: the package is discarded, then this run extracts again
    report = ingest(settings, endpoints)
    assert not report.failed and "discarded" in str(report.recovered)
    _assert_no_duplicate_live_keys(endpoints.warehouse_url)
    assert_raw_equals_source(endpoints)


def test_an_append_cursor_ahead_of_raw_loses_nothing(loaded_source: Settings) -> None:
    """What the fault benchmark found: after failed and discarded loads dlt's cursor for an
    append-only table stood past rows raw never got. The next ingest reads on from what raw
    holds, so those rows still arrive (once)."""
    from ingestion.pipeline import pipeline

    settings, endpoints = copy_of(loaded_source, "cursor_ahead")
    simulator.tick(endpoints, days=1)
    with psycopg.connect(endpoints.source_admin_url) as source:
        newest = source.execute("select max(id) from order_status_events").fetchone()[0]
    dlt_pipeline = pipeline(settings, endpoints)
    with dlt_pipeline.managed_state() as state:
        cursor = state["sources"][PIPELINE_NAME]["resources"]["order_status_events"]
        cursor["incremental"]["id"]["last_value"] = newest
    assert not ingest(settings, endpoints).failed
    _assert_no_duplicate_live_keys(endpoints.warehouse_url)
    assert_raw_equals_source(endpoints)


def test_a_new_source_then_a_full_refresh_keeps_the_old_keys_as_deletions(loaded_source: Settings):
    """`haven source init --replace` with a smaller source says to refresh; the full refresh
    then holds the new source's rows live and every key only the old source had as deleted."""
    settings, endpoints = copy_of(loaded_source, "replaced")
    simulator.tick(endpoints, days=1)
    assert not ingest(settings, endpoints).failed
    old = raw_keys(endpoints.warehouse_url)
    databases = {
        "HAVEN_WAREHOUSE_DATABASE": settings.warehouse_database,
        "HAVEN_SOURCE_DATABASE": settings.source_database,
    }
    replaced = run_haven(
        "source",
        "init",
        "--scale",
        "0.02",
        "--seed",
        "6",
        "--replace",
        env=databases,
        home=settings.home,
    )
    assert replaced.returncode == 0, replaced.stderr
    assert "haven run --full-refresh" in " ".join((replaced.stdout + replaced.stderr).split())
    report = ingest(settings, endpoints, full_refresh=True)
    assert not report.failed
    assert_raw_equals_source(endpoints)
    vanished = 0
    with (
        psycopg.connect(endpoints.source_admin_url) as source,
        psycopg.connect(endpoints.warehouse_url) as raw,
    ):
        for table, keys in old.items():
            live = {row[0] for row in source.execute(f"select id from {table}")}
            gone = keys - live
            vanished += len(gone)
            marked = {
                row[0]
                for row in raw.execute(
                    f"select id from raw_app.{table} where {DELETED_AT} is not null"
                    " group by id having count(*) = 1"
                )
            }
            assert gone <= marked, (
                f"{table}: old keys not kept as deleted: {sorted(gone - marked)[:5]}"
            )
            assert report.tables[table].kept_deleted >= len(gone)
    assert vanished > 0, "the smaller source lacks some of the old keys"
    assert ingest(settings, endpoints).loaded_rows == 0


def test_the_spark_lake_after_a_full_refresh_of_raw_equals_raw(loaded_source: Settings) -> None:
    """The lake is an append log: after a full refresh of PostgreSQL's raw, the next export
    appends every reloaded row and every new deletion mark, and each key's newest version (the
    rule the lake's views apply: newest load, a deletion mark first) is raw's row again."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from ingestion import lake

    settings, endpoints = copy_of(loaded_source, "lake_refresh")
    lake.pipeline(settings).run(lake.source(endpoints))
    simulator.tick(endpoints, days=2)
    assert not ingest(settings, endpoints, full_refresh=True).failed
    lake.pipeline(settings).run(lake.source(endpoints))
    deleted = simulator.deletions(endpoints)
    for table in ("customers", "listings", "categories"):
        log = ds.dataset(lake.lake_dir(settings) / lake.LAKE_SCHEMA / table).to_table(
            columns=["id", "_dlt_load_id", DELETED_AT]
        )
        order = pc.sort_indices(
            log,
            sort_keys=[
                ("id", "ascending"),
                ("_dlt_load_id", "descending"),
                (DELETED_AT, "descending"),
            ],
            null_placement="at_end",
        )
        newest: dict[int, bool] = {}
        for key, mark in zip(
            log.column("id").take(order).to_pylist(),
            log.column(DELETED_AT).take(order).to_pylist(),
            strict=True,
        ):
            newest.setdefault(key, mark is not None)
        with psycopg.connect(endpoints.warehouse_url) as raw:
            in_raw = {
                key: is_deleted
                for key, is_deleted in raw.execute(
                    f"select id, {DELETED_AT} is not null from raw_app.{table}"
                )
            }
        assert newest == in_raw, f"the lake's {table} differs from raw after the full refresh"
        assert deleted.get(table, set()) & set(in_raw) <= {k for k, d in newest.items() if d}
