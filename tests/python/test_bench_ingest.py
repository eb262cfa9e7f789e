"""`haven bench ingest` on a tiny source: every level runs, L0 and L2 land exactly the source's
rows, and the reports are written. Timings are reported, never asserted."""

from __future__ import annotations

import json
from pathlib import Path

from haven.bench import ingest as bench
from tests.python.conftest import settings_for


def test_bench_ingest_measures_all_levels_and_verifies(haven_home: Path, tmp_path: Path) -> None:
    settings = settings_for(haven_home, "bench")
    result = bench.run(settings, scale=0.01, repetitions=1)
    assert set(result.levels) == {"L0", "L1", "L2"}
    assert result.levels["L0"].verified is True
    assert result.levels["L2"].verified is True
    assert result.bytes_moved > 0
    assert result.tables_rows == sum(result.tables.values()) > 1000
    assert all(len(level.seconds) == 1 and level.seconds[0] > 0 for level in result.levels.values())
    json_path, markdown_path = bench.write_report(result, tmp_path, "test machine")
    report = json.loads(json_path.read_text())
    assert report["levels"]["L0"]["ratio_to_L0"] == 1.0
    assert "| L2 |" in markdown_path.read_text()
