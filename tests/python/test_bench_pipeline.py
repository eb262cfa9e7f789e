"""`haven bench pipeline` on a tiny scale: a full run, the runs after a day and after an hour and a
run with no source change, each step timed, the dbt nodes counted, the build's time split by
layer with the rows written, and the report says whether the targets were met. Timings are not
asserted."""

from __future__ import annotations

from pathlib import Path

from haven.bench import pipeline as bench
from tests.python.conftest import settings_for


def test_pipeline_bench_times_every_step_and_layer(haven_home: Path, tmp_path: Path) -> None:
    settings = settings_for(haven_home, "benchp")
    result = bench.run(settings, [0.01])
    (scale,) = result.scales
    assert list(scale.passes) == list(bench.PASSES)
    for run in scale.passes.values():
        assert list(run.steps) == list(bench.STEPS)
        assert all(seconds > 0 for seconds in run.steps.values())
        assert list(run.layers) == list(bench.LAYERS)
    full, month_start, incremental, hour, unchanged = (scale.passes[name] for name in bench.PASSES)
    assert month_start.rows["ingest"] > 0
    assert full.layers["tests"] > 0 and incremental.layers["tests"] > 0
    # an hour changes less than a day, and the run builds no more of the project
    assert 0 < hour.rows["ingest"] < incremental.rows["ingest"]
    assert 0 < hour.nodes <= incremental.nodes <= full.nodes and unchanged.nodes == 0
    # the full run rewrites every layer; the tick changes some rows; no change writes nothing
    assert all(
        full.rows[layer] > 0 for layer in ("ingest", "staging", "snapshots", "marts", "features")
    )
    assert 0 < incremental.rows["ingest"] < full.rows["ingest"]
    assert 0 < incremental.rows["staging"] < full.rows["staging"]
    assert 0 < incremental.rows["marts"] < full.rows["marts"]
    # no source change: nothing loaded, and the build finds nothing to do and is skipped
    assert unchanged.rows["ingest"] == 0
    assert sum(unchanged.layers.values()) == 0 and not any(unchanged.rows.values())
    assert scale.source_rows > 1000 and scale.peak_rss_bytes > 0
    _, markdown_path = bench.write_report(result, tmp_path, "test machine")
    text = markdown_path.read_text()
    assert (
        "| 0.01 |" in text
        and "the run after an hour is" in text
        and "the run after a day is" in text
        and "no source change is" in text
    )


def test_scaling_report_gives_throughput_per_core_and_speedup(tmp_path: Path) -> None:
    """The scaling benchmark's arithmetic and report, on measured-looking numbers (the benchmark
    itself starts Spark clusters of each size: run by hand, its table is in the README)."""
    from haven.bench import scaling
    from haven.bench.pipeline import PassResult

    def run(engine: str, workers: int, build: float, memory: dict | None = None):
        steps = {"ingest": 2.0} if engine == "postgres" else {"start": 30.0, "lake": 9.0}
        result = PassResult(steps={**steps, "build": build, "reconcile": 1.0})
        result.layers = {layer: build / 2 for layer in bench.LAYERS}
        return scaling.EngineRun(engine, workers, result, memory or {})

    result = scaling.ScalingResult(
        0.1,
        60_000,
        [
            run("postgres", 2, 20.0),
            run("spark", 1, 120.0, {"thrift": 500_000_000, "worker-1 executor": 260_000_000}),
            run("spark", 2, 80.0),
        ],
    )
    postgres, one, two = result.runs
    one.tick = PassResult(steps={"start": 30.0, "lake": 3.0, "build": 30.0, "reconcile": 1.0})
    assert one.tick_share == 0.25 and postgres.tick_share is None
    assert result.rows_per_core_second(postgres) == 60_000 / 20 / 2
    assert result.rows_per_core_second(two) == 60_000 / 80 / 2
    assert result.speedup(postgres) is None and result.speedup(one) == 1.0
    assert result.speedup(two) == 1.5
    _, markdown = scaling.write_report([result], tmp_path, "test machine")
    text = markdown.read_text()
    assert "| Spark, 2 worker(s) | 2 | 30.0 | - | 9.0 | 80.0 | 1.0 | 375 | 1.50× |" in text
    assert "| PostgreSQL | 2 | - | 2.0 | - | 20.0 | 1.0 | 1,500 | - |" in text
    assert "Spark, 1 worker(s): thrift 500, worker-1 executor 260" in text
    assert "| Spark, 1 worker(s) | 1 | 30.0 | - | 3.0 | 30.0 | 1.0 | 25% |" in text
    assert "| Spark, 1 worker(s) | after tick |" in text
