"""`haven bench pipeline` on a tiny scale: every stage runs in flow order for a full and an
incremental pass, and the report says whether the targets were met. Timings are not asserted."""

from __future__ import annotations

from pathlib import Path

from haven.bench import pipeline as bench
from tests.python.conftest import settings_for


def test_pipeline_bench_times_every_stage(haven_home: Path, tmp_path: Path) -> None:
    settings = settings_for(haven_home, "benchp")
    result = bench.run(settings, [0.01])
    (scale,) = result.scales
    assert list(scale.full) == list(bench.STAGES) == list(scale.incremental)
    assert all(seconds > 0 for seconds in [*scale.full.values(), *scale.incremental.values()])
    assert scale.source_rows > 1000 and scale.peak_rss_bytes > 0
    _, markdown_path = bench.write_report(result, tmp_path, "test machine")
    text = markdown_path.read_text()
    assert "| 0.01 |" in text and "incremental after a one-day tick" in text
