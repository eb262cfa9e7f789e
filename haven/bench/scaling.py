"""``haven bench pipeline --engine spark --workers 1,2``: the same full run on PostgreSQL and on
Spark clusters of each size, in one benchmark, so a reader sees how the Spark build scales.

Per scale: one simulated source; a full run on PostgreSQL (ingest, ``dbt build`` of the whole
project, reconcile); then for each worker count a fresh local cluster of that many one-core
workers (its own lake and metastore, so every size does the same work from nothing): start,
the lake export, the same ``dbt build`` on Spark, reconcile against Spark's tables, and stop.
Then the source ticks one simulated day and every engine runs again, incrementally (each
cluster restarted on its own lake and tables). Reported per engine and size: each stage's wall
time, the build's time per layer, rows built per second per core (source rows / build seconds /
cores), the speed-up of every size against the smallest, the incremental build's time as a
share of the full build's, and the peak memory of each Spark process.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from haven.bench.ingest import bench_settings
from haven.bench.measure import ProcessPeaks
from haven.bench.pipeline import LAYERS, PassResult, _build_layers
from haven.errors import HavenError
from haven.ops.reconcile import reconcile_endpoints
from haven.settings import Engine, Settings
from haven.source import simulator
from haven.transform.changes import build_if_changed
from haven.transform.dbt import DbtOutcome, build_variables, spark_build
from haven.warehouse import spark
from haven.warehouse.endpoints import Endpoints, up

STAGES = ("start", "ingest", "lake", "build", "reconcile")
"""A run's stages: starting the cluster (Spark only), PostgreSQL's ingest (PostgreSQL only: the
lake is exported from its raw), the lake export (Spark only), the build, the reconciliation."""


@dataclass
class EngineRun:
    engine: str
    workers: int
    """Spark's one-core workers; for PostgreSQL the machine's cores."""
    result: PassResult
    memory: dict[str, int] = field(default_factory=dict)
    """Peak RSS bytes per Spark process during the build."""
    tick: PassResult | None = None
    """The incremental run after a one-day tick."""

    @property
    def tick_share(self) -> float | None:
        """The incremental build's time as a share of the full build's."""
        return None if self.tick is None else self.tick.steps["build"] / self.result.steps["build"]

    @property
    def label(self) -> str:
        return (
            "PostgreSQL" if self.engine == Engine.postgres else f"Spark, {self.workers} worker(s)"
        )


@dataclass
class ScalingResult:
    scale: float
    source_rows: int
    runs: list[EngineRun] = field(default_factory=list)

    def rows_per_core_second(self, run: EngineRun) -> float:
        return self.source_rows / run.result.steps["build"] / run.workers

    def speedup(self, run: EngineRun) -> float | None:
        """The build's speed-up against the smallest Spark cluster (None for PostgreSQL)."""
        sparks = [each for each in self.runs if each.engine == Engine.spark]
        if run.engine != Engine.spark or not sparks:
            return None
        smallest = min(sparks, key=lambda each: each.workers)
        return smallest.result.steps["build"] / run.result.steps["build"]


def _check(outcome: DbtOutcome | None, engine: str) -> None:
    if outcome is not None and not outcome.success:
        names = ", ".join(node.name for node in outcome.failures[:5])
        raise HavenError(
            f"dbt build on {engine} failed during the benchmark: {names or outcome.error}."
        )


def _timed(result: PassResult, stage: str, call: Callable[[], object]) -> object:
    started = time.perf_counter()
    outcome = call()
    result.steps[stage] = time.perf_counter() - started
    return outcome


def _postgres_run(settings: Settings, endpoints: Endpoints, *, full: bool) -> PassResult:
    from ingestion.pipeline import ingest

    result = PassResult()
    _timed(result, "ingest", lambda: ingest(settings, endpoints, full_refresh=full))
    variables = build_variables(full_refresh=full)
    outcome = _timed(
        result,
        "build",
        lambda: build_if_changed(settings, endpoints, full_refresh=full, variables=variables),
    )
    _check(outcome, "PostgreSQL")  # type: ignore[arg-type]
    _build_layers(result, settings.dbt_target_dir, built=outcome is not None)
    _timed(result, "reconcile", lambda: reconcile_endpoints(endpoints, settings.source_schema))
    return result


def _cluster_settings(settings: Settings, workers: int) -> Settings:
    """A cluster of ``workers`` with its own home: its own lake, metastore and tables."""
    return settings.model_copy(
        update={
            "home": settings.home / "bench" / f"spark-w{workers}",
            "spark_workers": workers,
            "spark_port": None,
        }
    )


def _spark_run(
    settings: Settings, endpoints: Endpoints, workers: int, *, full: bool
) -> tuple[PassResult, dict[str, int]]:
    """A run on the cluster of ``workers``: from nothing (``full``), or incrementally on what
    its previous run left. Returns the stages and the peak memory per process in the build."""
    from ingestion import lake

    cluster_settings = _cluster_settings(settings, workers)
    cluster = spark.local_cluster(cluster_settings)
    cluster.stop()
    if full:  # the same work from nothing for every size
        shutil.rmtree(cluster_settings.spark_dir, ignore_errors=True)
    result = PassResult()
    try:
        endpoint = _timed(result, "start", lambda: spark.up(cluster_settings))
        _timed(result, "lake", lambda: lake.export(cluster_settings, endpoints, endpoint))  # type: ignore[arg-type]
        peaks = ProcessPeaks(pids=cluster.status().pids)
        variables = build_variables(full_refresh=full)
        with peaks.watching():
            outcome = _timed(
                result,
                "build",
                lambda: spark_build(cluster_settings, endpoints, variables=variables),
            )
        _check(outcome, f"Spark with {workers} worker(s)")  # type: ignore[arg-type]
        _build_layers(result, cluster_settings.dbt_target_dir, built=True)
        _timed(
            result,
            "reconcile",
            lambda: reconcile_endpoints(endpoints, settings.source_schema, endpoint),  # type: ignore[arg-type]
        )
    finally:
        cluster.stop()
    return result, peaks.peaks


def run(
    settings: Settings,
    scale: float,
    workers: list[int],
    *,
    progress: Callable[[str], None] = lambda _: None,
) -> ScalingResult:
    bench = bench_settings(settings, scale, "scaling")
    endpoints = up(bench)
    progress(f"SF {scale:g}: preparing the source (generated once, reused afterwards)")
    state, _ = simulator.init(endpoints, scale=scale, seed=42)
    result = ScalingResult(scale, sum(state.rows.values()))
    progress(f"SF {scale:g}: PostgreSQL")
    cores = os.cpu_count() or 1
    result.runs.append(
        EngineRun(Engine.postgres, cores, _postgres_run(bench, endpoints, full=True))
    )
    for count in sorted(set(workers)):
        progress(f"SF {scale:g}: Spark with {count} worker(s)")
        stages, memory = _spark_run(bench, endpoints, count, full=True)
        result.runs.append(EngineRun(Engine.spark, count, stages, memory))
    progress(f"SF {scale:g}: one-day tick")
    simulator.tick(endpoints, days=1)
    for run in result.runs:
        progress(f"SF {scale:g}: {run.label}, incremental")
        if run.engine == Engine.postgres:
            run.tick = _postgres_run(bench, endpoints, full=False)
        else:
            run.tick, _ = _spark_run(bench, endpoints, run.workers, full=False)
    return result


def _stage_cells(result: PassResult) -> str:
    """A run's seconds per stage as table cells, `-` where a stage does not apply."""
    return " | ".join(
        f"{result.steps[stage]:.1f}" if stage in result.steps else "-" for stage in STAGES
    )


def report_lines(result: ScalingResult) -> list[str]:
    """The Markdown report: stages, layers, throughput and speed-up, memory."""
    lines = [
        f"Scale factor {result.scale:g}: {result.source_rows:,} source rows; every run a full",
        "run from nothing (seconds of wall time per stage; `-` where a stage does not apply).",
        "",
        "| engine | cores | " + " | ".join(STAGES) + " | build rows/s per core | build speed-up |",
        "|---|---:|" + "---:|" * (len(STAGES) + 2),
    ]
    for run in result.runs:
        speedup = result.speedup(run)
        lines.append(
            f"| {run.label} | {run.workers} | "
            + _stage_cells(run.result)
            + f" | {result.rows_per_core_second(run):,.0f}"
            + f" | {'-' if speedup is None else f'{speedup:.2f}×'} |"
        )
    ticked = [run for run in result.runs if run.tick is not None]
    if ticked:
        lines += [
            "",
            "After a one-day tick, each engine again, incrementally (on the tables its full run",
            "left; seconds per stage, and the build's time as a share of the full build's):",
            "",
            "| engine | cores | " + " | ".join(STAGES) + " | build, share of full |",
            "|---|---:|" + "---:|" * (len(STAGES) + 1),
        ]
        for run in ticked:
            assert run.tick is not None
            lines.append(
                f"| {run.label} | {run.workers} | "
                + _stage_cells(run.tick)
                + f" | {run.tick_share:.0%} |"
            )
    lines += [
        "",
        "Inside the build: seconds of dbt's nodes per layer (two run at a time):",
        "",
        "| engine | run | " + " | ".join(LAYERS) + " |",
        "|---|---|" + "---:|" * len(LAYERS),
    ]
    for run in result.runs:
        for name, stages in (("full", run.result), ("after tick", run.tick)):
            if stages is None:
                continue
            lines.append(
                f"| {run.label} | {name} | "
                + " | ".join(f"{stages.layers.get(layer, 0.0):.1f}" for layer in LAYERS)
                + " |"
            )
    measured = [run for run in result.runs if run.memory]
    if measured:
        lines += ["", "Peak memory (RSS) per Spark process during the build, MB:", ""]
        for run in measured:
            parts = ", ".join(
                f"{name} {size / 1e6:,.0f}" for name, size in sorted(run.memory.items())
            )
            lines.append(f"- {run.label}: {parts}")
    return lines


def write_report(results: list[ScalingResult], directory: Path, machine: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "scaling.json"
    json_path.write_text(
        json.dumps(
            {
                "machine": machine,
                "scales": [
                    {
                        **asdict(result),
                        "rows_per_core_second": [
                            result.rows_per_core_second(run) for run in result.runs
                        ],
                        "build_speedup": [result.speedup(run) for run in result.runs],
                        "tick_build_share": [run.tick_share for run in result.runs],
                    }
                    for result in results
                ],
            },
            indent=2,
            default=str,
        )
    )
    lines = [f"# Scaling benchmark: PostgreSQL and Spark ({machine})", ""]
    for result in results:
        lines += [*report_lines(result), ""]
    markdown_path = directory / "scaling.md"
    markdown_path.write_text("\n".join(lines))
    return json_path, markdown_path
