"""The report page and the dbt docs site in a real headless Chromium (Debian's package): the page
loads without console errors, the charts are drawn, the docs site shows the models."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from haven.ops.cost import estimate
from haven.ops.docs import generate, make_server
from haven.ops.history import RunRecord, TaskTiming, ensure_schema, record
from haven.ops.reconcile import Reconciliation
from haven.ops.report import write
from haven.settings import Settings
from haven.transform.dbt import SourceFreshness
from haven.warehouse.connection import connect
from haven.warehouse.endpoints import TRANSFORMER, Endpoints
from ingestion.pipeline import IngestReport, TableReport

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed (`make test` and CI install it as root)",
)


def render_in_chromium(url: str, profile: Path) -> tuple[str, list[str]]:
    """The DOM after scripts ran, and the page's console messages."""
    assert CHROMIUM is not None
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return result.stdout, console


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served on a free port of 127.0.0.1."""
    server = make_server(tmp_path, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_report_page_draws_its_charts_without_console_errors(
    module_env: tuple[Settings, Endpoints],
    served: tuple[Path, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    _, endpoints = module_env
    directory, base_url = served
    with connect(endpoints.role_url(TRANSFORMER), purpose="warehouse") as conn:
        ensure_schema(conn)
        from datetime import UTC, datetime, timedelta

        for minutes, status in ((120, "completed"), (60, "failed"), (0, "completed")):
            started = datetime.now(UTC) - timedelta(minutes=minutes)
            run = RunRecord(
                started_at=started,
                status=status,
                finished_at=started + timedelta(seconds=30),
                wall_seconds=30.0,
            )
            run.tasks.append(TaskTiming("ingest", started, 12.5, 1, "completed"))
            run.ingest = IngestReport({"orders": TableReport("orders", 10, 10)}, 1.0, "1", 1000)
            run.reconciliation = [
                Reconciliation("orders", 10, 10, 9, 1),
                Reconciliation("customers", 5, 5, 5, 0),
            ]
            run.freshness = [
                SourceFreshness("orders", None, 120.0, "pass"),
                SourceFreshness("customers", None, 90.0, "pass"),
            ]
            run.cost = estimate(Settings(), cpu=12.0, bytes_moved=1000, warehouse_bytes=10**8)
            record(conn, run)
        write(conn, directory / "report.html", budget_usd=40.0)
    dom, console = render_in_chromium(
        f"{base_url}/report.html", tmp_path_factory.mktemp("chromium")
    )
    assert "Clutter Haven pipeline report" in dom
    assert dom.count("<svg") == 9, "every chart is drawn"
    assert dom.count('class="bar"') >= 6, "run bars are drawn"
    assert console == [], console


def test_docs_site_shows_the_models(
    module_env: tuple[Settings, Endpoints], tmp_path_factory: pytest.TempPathFactory
) -> None:
    from haven.settings import PROJECT_DIR

    settings, endpoints = module_env
    generate(settings, endpoints)
    server = make_server(PROJECT_DIR / "target", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        dom, _ = render_in_chromium(
            f"http://127.0.0.1:{server.server_address[1]}/index.html",
            tmp_path_factory.mktemp("chromium"),
        )
    finally:
        server.shutdown()
        server.server_close()
    assert "fct_orders" in dom, dom[:2000]
    assert "customer_features" in dom
