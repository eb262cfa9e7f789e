"""``haven bench pipeline``: wall time per stage of a full run at each scale, the growth from the
smallest scale to each larger one, and an incremental run after a one-day tick against the full
run. Stages call the same code as the flow's tasks (without Prefect, to time each one alone)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from haven.bench.ingest import bench_settings
from haven.bench.measure import PeakMemory
from haven.errors import HavenError
from haven.ops.reconcile import reconcile_endpoints
from haven.settings import Settings
from haven.source import simulator
from haven.transform.dbt import dbt_args, dbt_environment, run_dbt
from haven.warehouse.endpoints import Endpoints, up

STAGES = ("ingest", "snapshot", "build", "test", "reconcile")
"""In flow order: snapshots read staging, so the snapshot stage builds staging (seeds and the
models upstream of the snapshots) and snapshots it; build makes everything else."""


@dataclass
class ScaleResult:
    scale: float
    source_rows: int
    full: dict[str, float] = field(default_factory=dict)
    incremental: dict[str, float] = field(default_factory=dict)
    peak_rss_bytes: int = 0

    @property
    def full_seconds(self) -> float:
        return sum(self.full.values())

    @property
    def incremental_seconds(self) -> float:
        return sum(self.incremental.values())


@dataclass
class PipelineBenchmark:
    scales: list[ScaleResult]

    def growth(self, scale: ScaleResult) -> dict[str, float]:
        """Stage time at ``scale`` over the smallest scale's."""
        base = self.scales[0]
        return {
            stage: scale.full[stage] / base.full[stage] if base.full.get(stage) else float("nan")
            for stage in STAGES
        }

    def to_json(self) -> dict[str, object]:
        return {
            "scales": [
                {
                    **asdict(scale),
                    "full_seconds": scale.full_seconds,
                    "incremental_seconds": scale.incremental_seconds,
                    "incremental_share": scale.incremental_seconds / scale.full_seconds,
                    "growth_vs_smallest": self.growth(scale),
                }
                for scale in self.scales
            ]
        }


def _stages(
    settings: Settings, endpoints: Endpoints, *, full: bool
) -> dict[str, Callable[[], object]]:
    from ingestion.pipeline import ingest

    environment = dbt_environment(settings, endpoints)

    def dbt(*args: str, **options: object) -> None:
        outcome = run_dbt([*args[:-1], *dbt_args(args[-1], **options)], environment)  # type: ignore[arg-type]
        if not outcome.success:
            names = ", ".join(node.name for node in outcome.failures[:5])
            raise HavenError(
                f"dbt {args[-1]} failed during the benchmark: {names or outcome.error}."
            )

    return {
        "ingest": lambda: ingest(settings, endpoints, full_refresh=full),
        "snapshot": lambda: (
            dbt("seed", full_refresh=full),
            dbt(
                "run",
                select="+resource_type:snapshot",
                exclude="resource_type:snapshot",
                full_refresh=full,
            ),
            dbt("snapshot"),
        ),
        "build": lambda: dbt("run", exclude="+resource_type:snapshot", full_refresh=full),
        "test": lambda: dbt("test"),
        "reconcile": lambda: reconcile_endpoints(endpoints, settings.source_schema),
    }


def _timed(
    stages: dict[str, Callable[[], object]], progress: Callable[[str], None], label: str
) -> dict[str, float]:
    seconds = {}
    for name in STAGES:
        progress(f"{label}: {name}")
        started = time.perf_counter()
        stages[name]()
        seconds[name] = time.perf_counter() - started
    return seconds


def run(
    settings: Settings, scales: list[float], *, progress: Callable[[str], None] = lambda _: None
) -> PipelineBenchmark:
    results = []
    for scale in sorted(scales):
        bench = bench_settings(settings, scale)
        endpoints = up(bench)
        progress(f"SF {scale:g}: preparing the source (generated once, reused afterwards)")
        state, _ = simulator.init(endpoints, scale=scale, seed=42)
        result = ScaleResult(scale, sum(state.rows.values()))
        memory = PeakMemory()
        with memory.watching():
            result.full = _timed(
                _stages(bench, endpoints, full=True), progress, f"SF {scale:g} full"
            )
            progress(f"SF {scale:g}: one-day tick")
            simulator.tick(endpoints, days=1)
            result.incremental = _timed(
                _stages(bench, endpoints, full=False), progress, f"SF {scale:g} incremental"
            )
        result.peak_rss_bytes = memory.peak
        results.append(result)
    return PipelineBenchmark(results)


def write_report(result: PipelineBenchmark, directory: Path, machine: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "pipeline.json"
    json_path.write_text(json.dumps({"machine": machine, **result.to_json()}, indent=2))
    lines = [
        f"# Pipeline benchmark ({machine})",
        "",
        "| SF | rows | " + " | ".join(STAGES) + " | full | incremental | incr/full | peak RSS MB |",
        "|---|---:|" + "---:|" * (len(STAGES) + 4),
    ]
    for scale in result.scales:
        lines.append(
            f"| {scale.scale:g} | {scale.source_rows:,} | "
            + " | ".join(f"{scale.full[s]:.1f}" for s in STAGES)
            + f" | {scale.full_seconds:.1f} | {scale.incremental_seconds:.1f} | {scale.incremental_seconds / scale.full_seconds:.0%} | {scale.peak_rss_bytes / 2**20:.0f} |"
        )
    if len(result.scales) > 1:
        largest = result.scales[-1]
        growth = result.growth(largest)
        ratio = largest.scale / result.scales[0].scale
        lines += [
            "",
            f"Growth from SF {result.scales[0].scale:g} to SF {largest.scale:g} ({ratio:g}× the data): "
            + ", ".join(f"{stage} {value:.1f}×" for stage, value in growth.items())
            + f"; target ≤ {ratio:g}× per stage: {'met' if all(v <= ratio for v in growth.values()) else 'missed'}.",
        ]
    for scale in result.scales:
        share = scale.incremental_seconds / scale.full_seconds
        lines.append(
            f"SF {scale.scale:g}: incremental after a one-day tick is {share:.0%} of the full run (target ≤ 10 %): {'met' if share <= 0.10 else 'missed'}."
        )
    markdown_path = directory / "pipeline.md"
    markdown_path.write_text("\n".join(lines) + "\n")
    return json_path, markdown_path
