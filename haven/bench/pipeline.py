"""``haven bench pipeline``: what a run costs at each scale, and how that follows the change.

Per scale, five passes of the flow's steps (ingest, one ``dbt build``, reconcile; without
Prefect, to time each alone): a full run (everything reloaded and rebuilt, every row tested);
the run after a one-day tick into a new month (the source starts on the first of a month), in
which the features gain an as-of date and compute it for everyone, as once a month;
the run after one more day (a day's run); the run after one more hour (``tick --hours 1``: the
hourly deployment's run, the main target); and a run with no change. Each pass reports the
wall time of its steps, the dbt nodes it ran and, inside the build, the seconds dbt's nodes
spent per layer (staging, snapshots, marts, features, tests) with the rows the layer's models
wrote, so a reader sees where the time goes. Ratios are against the full run measured in the
same benchmark.
"""

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
from haven.transform.changes import build_if_changed
from haven.transform.dbt import build_variables, read_run_results
from haven.warehouse.endpoints import Endpoints, up

STEPS = ("ingest", "build", "reconcile")
"""A run's steps in flow order, each timed by the wall clock."""

LAYERS = ("staging", "snapshots", "marts", "features", "tests")
"""Where the build's time goes: its nodes' seconds by project folder. dbt runs two nodes at a
time, so they add up to more than the build's wall time; the rest of the wall time is dbt's
own (parsing, hooks, starting threads)."""

PASSES = ("full", "month start", "day", "hour", "unchanged")
TICKS: dict[str, dict[str, int]] = {
    "month start": {"days": 1},
    "day": {"days": 1},
    "hour": {"hours": 1},
}
"""The tick before each pass that follows one."""

FOLDER_LAYERS = {
    "staging": "staging",
    "quarantine": "staging",
    "snapshots": "snapshots",
    "marts": "marts",
    "ml": "features",
}

TARGETS = {
    "hour": {1.0: 0.05, 10.0: 0.03},
    "day": {1.0: 0.10, 10.0: 0.05},
    "month start": 0.15,
    "unchanged": 0.02,
}
"""Issue targets, as a share of the full run: the run after an hour at most 5 % at SF1 and 3 %
at SF10, after a day 10 % and 5 % (the SF10 target for larger scales, SF1's for smaller ones);
the first run of a month 15 %; a run with no source change 2 %."""


@dataclass
class PassResult:
    steps: dict[str, float] = field(default_factory=dict)
    layers: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    """Rows loaded (ingest) and rows written by each layer's models."""
    nodes: int = 0
    """dbt nodes the build ran (models, tests, seeds); 0 when it was skipped."""

    @property
    def seconds(self) -> float:
        return sum(self.steps.values())


@dataclass
class ScaleResult:
    scale: float
    source_rows: int
    passes: dict[str, PassResult] = field(default_factory=dict)
    peak_rss_bytes: int = 0

    def share(self, name: str) -> float:
        return self.passes[name].seconds / self.passes["full"].seconds

    def target(self, name: str) -> float:
        target = TARGETS[name]
        if isinstance(target, dict):
            return target[10.0] if self.scale >= 10 else target[1.0]
        return target


@dataclass
class PipelineBenchmark:
    scales: list[ScaleResult]

    def to_json(self) -> dict[str, object]:
        return {
            "scales": [
                {
                    **asdict(scale),
                    "seconds": {name: run.seconds for name, run in scale.passes.items()},
                    "share_of_full": {name: scale.share(name) for name in PASSES[1:]},
                    "targets": {name: scale.target(name) for name in TARGETS},
                }
                for scale in self.scales
            ]
        }


def _layer(unique_id: str, fqns: dict[str, list[str]]) -> str | None:
    kind = unique_id.split(".", 1)[0]
    if kind in {"test", "unit_test"}:
        return "tests"
    if kind == "seed":
        return "staging"
    fqn = fqns.get(unique_id) or []
    return FOLDER_LAYERS.get(fqn[1]) if len(fqn) > 2 else None


def _build_layers(result: PassResult, target_dir: Path, *, built: bool) -> None:
    """Node seconds and rows written per layer, from dbt's run_results and manifest (all zero
    when the build was skipped)."""
    result.layers = dict.fromkeys(LAYERS, 0.0)
    for layer in LAYERS[:-1]:
        result.rows[layer] = 0
    if not built:
        return
    manifest = json.loads((target_dir / "manifest.json").read_text())
    fqns = {uid: node.get("fqn", []) for uid, node in manifest.get("nodes", {}).items()}
    nodes = read_run_results(target_dir)
    result.nodes = len(nodes)
    for node in nodes:
        layer = _layer(node.unique_id, fqns)
        if layer is None:
            continue
        result.layers[layer] += node.seconds
        if layer != "tests" and node.resource_type == "model" and node.rows_affected:
            result.rows[layer] += node.rows_affected


def _run_pass(
    settings: Settings, endpoints: Endpoints, *, full: bool, progress: Callable[[str], None]
) -> PassResult:
    from ingestion.pipeline import ingest

    result = PassResult()

    def build() -> bool:
        """True when dbt built; False when there was nothing to build."""
        outcome = build_if_changed(
            settings, endpoints, full_refresh=full, variables=build_variables(full_refresh=full)
        )
        if outcome is None:
            progress("build: nothing changed, skipped")
            return False
        if not outcome.success:
            names = ", ".join(node.name for node in outcome.failures[:5])
            raise HavenError(f"dbt build failed during the benchmark: {names or outcome.error}.")
        return True

    steps: dict[str, Callable[[], object]] = {
        "ingest": lambda: ingest(settings, endpoints, full_refresh=full),
        "build": build,
        "reconcile": lambda: reconcile_endpoints(endpoints, settings.source_schema),
    }
    built = False
    for name in STEPS:
        progress(name)
        started = time.perf_counter()
        outcome = steps[name]()
        result.steps[name] = time.perf_counter() - started
        if name == "ingest":
            result.rows["ingest"] = outcome.loaded_rows  # type: ignore[attr-defined]
        if name == "build":
            built = bool(outcome)
    _build_layers(result, settings.dbt_target_dir, built=built)
    return result


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
            for name in PASSES:
                if name in TICKS:
                    progress(f"SF {scale:g}: tick {TICKS[name]}")
                    simulator.tick(endpoints, **TICKS[name])
                result.passes[name] = _run_pass(
                    bench,
                    endpoints,
                    full=name == "full",
                    progress=lambda step, label=f"SF {scale:g} {name}": progress(
                        f"{label}: {step}"
                    ),
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
        "Wall seconds per step, and the share of the full run at the same scale:",
        "",
        "| SF | rows | run | " + " | ".join(STEPS) + " | total | of full | dbt nodes |",
        "|---|---:|---|" + "---:|" * (len(STEPS) + 3),
    ]
    for scale in result.scales:
        for name, run in scale.passes.items():
            lines.append(
                f"| {scale.scale:g} | {scale.source_rows:,} | {name} | "
                + " | ".join(f"{run.steps[step]:.1f}" for step in STEPS)
                + f" | {run.seconds:.1f} | {scale.share(name):.1%} | {run.nodes} |"
            )
    lines += [
        "",
        "Inside the build: seconds of dbt's nodes per layer (two run at a time) and rows written:",
        "",
        "| SF | run | ingest rows | " + " | ".join(LAYERS) + " |",
        "|---|---|---:|" + "---:|" * len(LAYERS),
    ]
    for scale in result.scales:
        for name, run in scale.passes.items():
            cells = [
                f"{run.layers[layer]:.1f} s"
                + (f", {run.rows[layer]:,} rows" if layer in run.rows else "")
                for layer in LAYERS
            ]
            lines.append(
                f"| {scale.scale:g} | {name} | {run.rows.get('ingest', 0):,} | "
                + " | ".join(cells)
                + " |"
            )
    lines.append("")
    for scale in result.scales:
        for name, label in (
            ("hour", "the run after an hour"),
            ("day", "the run after a day"),
            ("month start", "the first run of a month (features for a new as-of date)"),
            ("unchanged", "a run with no source change"),
        ):
            share, target = scale.share(name), scale.target(name)
            lines.append(
                f"SF {scale.scale:g}: {label} is {share:.1%} of the full run "
                f"(target ≤ {target:.0%}): {'met' if share <= target else 'missed'}."
            )
    hourly = [scale for scale in result.scales if scale.scale >= 1]
    if len(hourly) > 1:
        small, large = hourly[0], hourly[-1]
        growth = large.passes["hour"].seconds / small.passes["hour"].seconds
        lines.append(
            f"The hourly run at SF {large.scale:g} costs {growth:.2f}× the one at SF "
            f"{small.scale:g} for {large.scale / small.scale:g}× the data "
            f"(target ≤ 2×): {'met' if growth <= 2 else 'missed'}."
        )
    markdown_path = directory / "pipeline.md"
    markdown_path.write_text("\n".join(lines) + "\n")
    return json_path, markdown_path
