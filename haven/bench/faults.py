"""``haven bench faults``: does the pipeline survive a bad network and a dying warehouse?

The ``elt`` flow runs N times at a small scale, a one-day tick of the simulated source between
runs, with a TCP fault proxy (``fault_proxy``) between the pipeline and each database: a share of
connections is dropped, reset part way through, or stalled. A few runs also have the embedded
warehouse killed (SIGKILL) part way through. After every run the benchmark checks, over direct
connections, that raw equals the source (no row lost, none duplicated) and that every mart,
feature table and history equals a full rebuild of the same raw data. A few clean runs first (no faults, no kills) are the baseline the run times are
compared with, in the same benchmark.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from haven.bench.fault_proxy import FaultProxyProcess, FaultStats, proxied_url
from haven.bench.ingest import bench_settings
from haven.errors import HavenError
from haven.settings import Settings, get_settings
from haven.source import simulator
from haven.transform.equality import create_reference, differences_from_full_rebuild
from haven.warehouse.connection import connect
from haven.warehouse.embedded import EmbeddedServer
from haven.warehouse.endpoints import Endpoints, embedded_server, up
from haven.warehouse.fingerprint import table_fingerprint

REFERENCE_SUFFIX = "_reference"
SEED = 42


@dataclass
class RunOutcome:
    number: int
    faulted: bool
    """False for the clean baseline runs."""
    succeeded: bool
    seconds: float
    retries: int
    killed: bool
    error: str | None = None
    raw_tables_differing: list[str] = field(default_factory=list)
    rows_lost: int = 0
    rows_duplicated: int = 0
    mart_differences: list[str] | None = None
    """None when this run's marts were not compared with a full rebuild."""


@dataclass
class FaultBenchmark:
    scale: float
    fault_share: float
    stall_seconds: float
    seed: int
    outcomes: list[RunOutcome] = field(default_factory=list)
    warehouse_connections: FaultStats = field(default_factory=FaultStats)
    source_connections: FaultStats = field(default_factory=FaultStats)

    @property
    def faulted_runs(self) -> list[RunOutcome]:
        return [run for run in self.outcomes if run.faulted]

    @property
    def success_rate(self) -> float:
        runs = self.faulted_runs
        return sum(run.succeeded for run in runs) / len(runs) if runs else 0.0

    @property
    def rows_lost(self) -> int:
        return sum(run.rows_lost for run in self.outcomes)

    @property
    def rows_duplicated(self) -> int:
        return sum(run.rows_duplicated for run in self.outcomes)

    @property
    def mart_checks(self) -> tuple[int, int]:
        """(runs compared with a full rebuild, of which equal)."""
        checked = [run for run in self.outcomes if run.mart_differences is not None]
        return len(checked), sum(not run.mart_differences for run in checked)

    def median_seconds(self, faulted: bool) -> float:
        times = [run.seconds for run in self.outcomes if run.faulted == faulted and run.succeeded]
        return statistics.median(times) if times else 0.0


def run(
    settings: Settings,
    *,
    runs: int,
    scale: float = 0.01,
    fault_share: float = 0.01,
    stall_seconds: float = 2.0,
    kills: int = 3,
    baseline_runs: int = 3,
    seed: int = 1,
    progress: Callable[[str], None] = lambda _: None,
) -> FaultBenchmark:
    """Prepare a scratch warehouse and source, run the baseline, then the faulted runs."""
    check_options(
        settings,
        runs=runs,
        kills=kills,
        baseline_runs=baseline_runs,
        fault_share=fault_share,
    )
    bench = bench_settings(settings, scale, "faults")
    result = FaultBenchmark(scale, fault_share, stall_seconds, seed)
    random_kills = random.Random(seed)
    kill_runs = set(random_kills.sample(range(runs), kills))
    with _settings_of_the_flow(bench):
        direct = _fresh(bench, scale, progress)
        from flows.elt import elt  # Prefect reads its settings at import

        progress("first load (full, no faults)")
        elt(endpoints=direct)
        reference = bench.warehouse_database + REFERENCE_SUFFIX
        create_reference(direct, reference)
        server = embedded_server(bench)
        port = server.start()
        proxies = (
            FaultProxyProcess(
                port, fault_share=fault_share, stall_seconds=stall_seconds, seed=seed
            ),
            FaultProxyProcess(
                port, fault_share=fault_share, stall_seconds=stall_seconds, seed=seed + 1
            ),
        )
        with proxies[0] as warehouse_proxy, proxies[1] as source_proxy:
            proxied = Endpoints(
                warehouse_url=proxied_url(direct.warehouse_url, warehouse_proxy.port),
                source_admin_url=direct.source_admin_url,
                source_url=proxied_url(direct.source_url, source_proxy.port),
                embedded=True,
                role_password=direct.role_password,
            )
            last_seconds = 10.0
            for number in range(baseline_runs + runs):
                faulted = number >= baseline_runs
                for proxy in proxies:
                    proxy.set_fault_share(fault_share if faulted else 0.0)
                kill = faulted and (number - baseline_runs) in kill_runs
                label = f"run {number + 1}/{baseline_runs + runs}" + (
                    "" if faulted else " (baseline)"
                )
                progress(f"{label}: tick")
                simulator.tick(direct, days=1)
                progress(f"{label}: elt" + (" (the warehouse will be killed)" if kill else ""))
                delay = random_kills.uniform(1.0, max(1.5, 0.8 * last_seconds))
                outcome = _one_run(elt, proxied, number, faulted, server, delay if kill else None)
                if outcome.succeeded:
                    last_seconds = outcome.seconds
                if server.start() != port:  # a kill that landed after the run's last retry
                    raise HavenError("the embedded warehouse came back on another port.")
                if outcome.succeeded:  # a failed run leaves raw behind; the next one catches up
                    progress(f"{label}: checking raw against the source")
                    _check_raw(direct, bench.source_schema, outcome)
                # the reference's histories must see every raw state the warehouse's saw, so it
                # is rebuilt after every run; a failed run's partial build is not compared
                progress(f"{label}: comparing with a full rebuild")
                found = differences_from_full_rebuild(bench, direct, reference)
                outcome.mart_differences = found if outcome.succeeded else None
                result.outcomes.append(outcome)
            result.warehouse_connections = warehouse_proxy.stats()
            result.source_connections = source_proxy.stats()
    return result


def check_options(
    settings: Settings,
    *,
    runs: int,
    kills: int,
    baseline_runs: int,
    fault_share: float,
    stall_seconds: float = 2.0,
) -> None:
    """One sentence for options the benchmark cannot run with."""
    if settings.warehouse_url is not None or settings.source_url is not None:
        raise HavenError(
            "haven bench faults kills and restarts the embedded warehouse; unset "
            "HAVEN_WAREHOUSE_URL and HAVEN_SOURCE_URL to run it."
        )
    if stall_seconds <= 0:
        raise HavenError(f"--stall-seconds must be more than 0, got {stall_seconds}.")
    if not 0 <= fault_share <= 1:
        raise HavenError(f"--fault-share must be between 0 and 1, got {fault_share}.")
    if runs < 1 or not 0 <= kills <= runs or baseline_runs < 0:
        raise HavenError(
            "--runs must be at least 1, --kills between 0 and --runs, --baseline-runs at least 0."
        )


def _fresh(bench: Settings, scale: float, progress: Callable[[str], None]) -> Endpoints:
    """An empty scratch warehouse (and dlt state) and a newly generated source."""
    import shutil

    direct = up(bench)
    with connect(direct.source_admin_url, purpose="embedded warehouse") as conn:
        for database in (bench.warehouse_database, bench.warehouse_database + REFERENCE_SUFFIX):
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database))
            )
    shutil.rmtree(bench.dlt_dir, ignore_errors=True)
    shutil.rmtree(bench.pending_runs_dir, ignore_errors=True)  # records of the dropped database
    direct = up(bench)
    progress(f"SF {scale:g}: generating the source")
    simulator.init(direct, scale=scale, seed=SEED, replace=True)
    return direct


@contextmanager
def _settings_of_the_flow(bench: Settings) -> Iterator[None]:
    """The flow reads ``get_settings()``: point it at the benchmark's databases meanwhile."""
    names = {
        "HAVEN_WAREHOUSE_DATABASE": bench.warehouse_database,
        "HAVEN_SOURCE_DATABASE": bench.source_database,
        "HAVEN_HOME": str(bench.home),
    }
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(names)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()


def _one_run(
    elt: Callable[..., object],
    endpoints: Endpoints,
    number: int,
    faulted: bool,
    server: EmbeddedServer,
    kill_after: float | None,
) -> RunOutcome:
    killed = threading.Event()

    def kill() -> None:
        pid = server.status().pid
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            killed.set()

    timer = threading.Timer(kill_after, kill) if kill_after is not None else None
    if timer:
        timer.start()
    started = time.perf_counter()
    try:
        summary = elt(endpoints=endpoints)
    except BaseException as error:  # noqa: BLE001 - a failed run is a measurement
        seconds = time.perf_counter() - started
        return RunOutcome(
            number + 1,
            faulted,
            succeeded=False,
            seconds=seconds,
            retries=0,
            killed=killed.is_set(),
            error=(str(error).splitlines() or [type(error).__name__])[0][:300],
        )
    finally:
        if timer:
            timer.cancel()
    record = summary.run  # type: ignore[attr-defined]
    return RunOutcome(
        number + 1,
        faulted,
        succeeded=record.status == "completed",
        seconds=time.perf_counter() - started,
        retries=sum(task.attempts - 1 for task in record.tasks),
        killed=killed.is_set(),
        error=record.error,
    )


def _check_raw(endpoints: Endpoints, source_schema: str, outcome: RunOutcome) -> None:
    """Raw's live rows equal the source's, table by table (fingerprints over every column), and
    the rows lost (source keys raw lacks) and duplicated (a key twice in raw)."""
    from ingestion.app.helpers import source_columns
    from ingestion.app.settings import DELETED_AT, TABLES

    with (
        psycopg.connect(endpoints.source_admin_url) as source,
        psycopg.connect(endpoints.warehouse_url) as warehouse,
    ):
        for spec in TABLES:
            table = spec.name
            columns = list(source_columns(source, source_schema, table))
            live = (
                sql.SQL("{} is null").format(sql.Identifier(DELETED_AT))
                if DELETED_AT in source_columns(warehouse, "raw_app", table)
                else sql.SQL("true")
            )
            if table_fingerprint(source, source_schema, table, columns) != table_fingerprint(
                warehouse, "raw_app", table, columns, where=live
            ):
                outcome.raw_tables_differing.append(table)
            source_rows = _count(
                source, sql.SQL("select count(*) from {}.{}"), source_schema, table
            )
            raw_rows, raw_keys = warehouse.execute(
                sql.SQL("select count(*), count(distinct id) from raw_app.{} where {}").format(
                    sql.Identifier(table), live
                )
            ).fetchone()  # type: ignore[misc]
            outcome.rows_duplicated += int(raw_rows) - int(raw_keys)
            outcome.rows_lost += max(0, source_rows - int(raw_keys))


def _count(conn: psycopg.Connection, query: sql.SQL, schema: str, table: str) -> int:
    row = conn.execute(query.format(sql.Identifier(schema), sql.Identifier(table))).fetchone()
    return int(row[0]) if row else 0


def write_report(result: FaultBenchmark, directory: Path, machine: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "faults.json"
    json_path.write_text(json.dumps(asdict(result), default=str, indent=2))
    markdown_path = directory / "faults.md"
    markdown_path.write_text(markdown(result, machine))
    return json_path, markdown_path


def markdown(result: FaultBenchmark, machine: str) -> str:
    faulted = result.faulted_runs
    succeeded = sum(run.succeeded for run in faulted)
    checked, equal = result.mart_checks
    warehouse, source = result.warehouse_connections, result.source_connections
    clean, slow = result.median_seconds(False), result.median_seconds(True)
    lines = [
        f"# haven bench faults: SF {result.scale:g}, {result.fault_share:.1%} of connections "
        f"faulted ({machine})",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| runs attempted (faulted) | {len(faulted)} |",
        f"| runs succeeded | {succeeded} ({result.success_rate:.1%}) |",
        f"| runs with the warehouse killed | {sum(run.killed for run in faulted)} |",
        f"| task retries used | {sum(run.retries for run in faulted)} |",
        f"| connections through the proxies | {warehouse.connections + source.connections} |",
        f"| dropped / reset / stalled | {warehouse.dropped + source.dropped} / "
        f"{warehouse.reset + source.reset} / {warehouse.stalled + source.stalled} |",
        f"| succeeded runs after which raw differed from the source | "
        f"{sum(bool(run.raw_tables_differing) for run in result.outcomes)} |",
        f"| rows lost / duplicated (after succeeded runs) | {result.rows_lost} / "
        f"{result.rows_duplicated} |",
        f"| succeeded runs compared with a full rebuild / equal | {checked} / {equal} |",
        f"| median run, clean baseline | {clean:.1f} s |",
        f"| median run, faulted | {slow:.1f} s ({slow / clean:.2f}× baseline) |"
        if clean
        else "| median run, faulted | no baseline |",
        "",
    ]
    failures = [run for run in result.outcomes if not run.succeeded]
    if failures:
        lines += ["Failed runs:", ""]
        lines += [f"- run {run.number}: {run.error}" for run in failures]
        lines.append("")
    unequal = [run for run in result.outcomes if run.mart_differences]
    if unequal:
        lines += ["Runs whose marts differed from a full rebuild:", ""]
        lines += [
            f"- run {run.number}: {len(run.mart_differences or [])} relation(s), first: "
            f"{(run.mart_differences or [''])[0]}"
            for run in unequal
        ]
        lines.append("")
    return "\n".join(lines)
