"""The report page and the dbt docs site in a real headless Chromium (Debian's package, driven by
Playwright): at 1400 and 800 px the dashboard loads without console errors, every panel with data
draws marks, labels do not overlap or spill out of their chart, and the docs site shows the models.
Screenshots are kept under the test's temporary directory."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from haven.ops.cost import estimate
from haven.ops.docs import generate, make_server
from haven.ops.history import RunRecord, TaskTiming, ensure_schema, record
from haven.ops.reconcile import Reconciliation
from haven.ops.report import write
from haven.settings import Settings
from haven.transform.dbt import ArtifactResult, SourceFreshness
from haven.warehouse.connection import connect
from haven.warehouse.endpoints import TRANSFORMER, Endpoints
from ingestion.pipeline import IngestReport, TableReport

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed (`make test` and CI install it as root)",
)
PANELS_WITH_DATA = [
    "runs",
    "cost",
    "tests",
    "rows",
    "freshness",
    "quarantine",
    "reconciliation",
    "tests-by-model",
]

# For every chart: its size against its panel, its drawn marks, and every label's box.
MEASURE = """
() => [...document.querySelectorAll('.js-plotly-plot')].map((chart) => {
    const box = (element) => {
        const r = element.getBoundingClientRect();
        return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, text: element.textContent};
    };
    const marks = [...chart.querySelectorAll('.barlayer .point path, .scatterlayer .point, .scatterlayer .js-line')]
        .filter((mark) => { const r = mark.getBoundingClientRect(); return r.width > 0 || r.height > 0; });
    return {
        id: chart.id,
        chart: box(chart.querySelector('.main-svg')),
        panel: box(chart.closest('.panel')),
        marks: marks.length,
        groups: {
            xticks: [...chart.querySelectorAll('.xtick text')].map(box),
            yticks: [...chart.querySelectorAll('.ytick text')].map(box),
            legend: [...chart.querySelectorAll('.legendtext')].map(box),
        },
    };
})
"""


def _overlaps(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return min(a["right"], b["right"]) - max(a["left"], b["left"]) > 1 and (
        min(a["bottom"], b["bottom"]) - max(a["top"], b["top"]) > 1
    )


def _inside(inner: dict[str, Any], outer: dict[str, Any]) -> bool:
    return (
        inner["left"] >= outer["left"] - 1
        and inner["right"] <= outer["right"] + 1
        and inner["top"] >= outer["top"] - 1
        and inner["bottom"] <= outer["bottom"] + 1
    )


def layout_problems(charts: list[dict[str, Any]]) -> list[str]:
    """What is wrong with the drawn charts, in words (empty when nothing is)."""
    problems = []
    for chart in charts:
        if not _inside(chart["chart"], chart["panel"]):
            problems.append(f"{chart['id']} is wider or taller than its panel")
        if chart["marks"] == 0:
            problems.append(f"{chart['id']} draws no marks")
        for group, labels in chart["groups"].items():
            shown = [label for label in labels if label["text"].strip()]
            problems += [
                f"{chart['id']}: {group} label {label['text']!r} spills out of the chart"
                for label in shown
                if not _inside(label, chart["chart"])
            ]
            problems += [
                f"{chart['id']}: {group} labels {a['text']!r} and {b['text']!r} overlap"
                for index, a in enumerate(shown)
                for b in shown[index + 1 :]
                if _overlaps(a, b)
            ]
    return problems


def test_layout_problems_are_found() -> None:
    """The checker itself can fail: overlapping labels, a chart wider than its panel, no marks."""
    box = {"left": 0, "right": 100, "top": 0, "bottom": 100, "text": ""}
    label = {"left": 10, "right": 40, "top": 10, "bottom": 20, "text": "a"}
    chart = {
        "id": "chart-x",
        "chart": {**box, "right": 120},
        "panel": box,
        "marks": 0,
        "groups": {
            "xticks": [label, {**label, "left": 30, "text": "b"}],
            "yticks": [],
            "legend": [],
        },
    }
    assert layout_problems([chart]) == [
        "chart-x is wider or taller than its panel",
        "chart-x draws no marks",
        "chart-x: xticks labels 'a' and 'b' overlap",
    ]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


def open_page(browser: Any, url: str, width: int) -> tuple[Any, list[str]]:
    """The page loaded at ``width`` px, and the console errors and warnings it logged."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    console: list[str] = []
    page.on(
        "console",
        lambda message: (
            console.append(f"{message.type}: {message.text}")
            if message.type in {"error", "warning"}
            else None
        ),
    )
    page.on("pageerror", lambda error: console.append(f"page error: {error}"))
    page.goto(url, wait_until="load")
    return page, console


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served on a free port of 127.0.0.1."""
    server = make_server(tmp_path, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def record_history(conn: Any) -> None:
    """Three hourly runs (one failed on a test, one retried) and a quarantine shaped like the
    ``quarantined_rows`` model's."""
    ensure_schema(conn)
    now = datetime.now(UTC)
    for hours, status, loaded in (
        (2, "completed", 60000),
        (1, "failed", 120),
        (0, "completed", 95),
    ):
        started = now - timedelta(hours=hours)
        run = RunRecord(
            started_at=started,
            status=status,
            error="dbt build failed: 1 node(s) failed: not_null_fct_orders_order_id"
            if status == "failed"
            else None,
            finished_at=started + timedelta(seconds=30),
            wall_seconds=30.0,
        )
        run.tasks += [
            TaskTiming("ingest", started, 12.5, 1 + hours % 2, "completed"),
            TaskTiming("build", started, 14.0, 1, status),
        ]
        run.ingest = IngestReport(
            {
                "orders": TableReport("orders", loaded, loaded),
                "customers": TableReport("customers", loaded // 3, loaded // 3),
            },
            1.0,
            "1",
            1000,
        )
        run.dbt_results["build"] = [
            ArtifactResult(f"test.p.not_null_{model}_id", "test", result, 0.1, None, None, model)
            for model, result in (
                ("fct_orders", "fail" if status == "failed" else "pass"),
                ("dim_customers", "pass"),
                ("stg_app__order_status_events", "pass"),
            )
        ] + [
            ArtifactResult(
                "unit_test.p.fct_orders.t", "unit_test", "pass", 0.1, None, None, "fct_orders"
            )
        ]
        run.reconciliation = [
            Reconciliation("orders", loaded, loaded, loaded - 2, 1),
            Reconciliation("order_status_events", 5 * loaded, 5 * loaded, 5 * loaded, 0),
        ]
        run.freshness = [
            SourceFreshness("orders", None, 7200.0, "pass", 21600.0, 86400.0),
            SourceFreshness("order_status_events", None, 30000.0, "warn", 21600.0, 86400.0),
        ]
        run.cost = estimate(Settings(), cpu=12.0, bytes_moved=1000, warehouse_bytes=10**8)
        record(conn, run)
    conn.execute("create schema if not exists quarantine")
    conn.execute(
        "create table if not exists quarantine.quarantined_rows (source_table text, reason_codes text[])"
    )
    conn.execute(
        "insert into quarantine.quarantined_rows values ('orders', '{negative_total}'),"
        " ('orders', '{negative_total,unknown_customer}'), ('payments', '{unknown_order}')"
    )
    conn.commit()


def test_dashboard_draws_every_panel_readably_at_1400_and_800_px(
    module_env: tuple[Settings, Endpoints],
    served: tuple[Path, str],
    browser: Any,
) -> None:
    _, endpoints = module_env
    directory, base_url = served
    with connect(endpoints.role_url(TRANSFORMER), purpose="warehouse") as conn:
        try:
            record_history(conn)
            write(conn, directory / "report.html", budget_usd=40.0)
        finally:  # the docs test builds the real quarantine model in this warehouse
            conn.rollback()
            conn.execute("drop table if exists quarantine.quarantined_rows")
            conn.commit()
    for width in (1400, 800):
        page, console = open_page(browser, f"{base_url}/report.html", width)
        page.screenshot(path=str(directory / f"report-{width}.png"), full_page=True)
        assert page.locator("h1").inner_text() == "Clutter Haven pipeline report"
        drawn = page.evaluate(MEASURE)
        assert sorted(chart["id"] for chart in drawn) == sorted(
            f"chart-{key}" for key in PANELS_WITH_DATA
        ), "every panel with data draws a chart"
        assert layout_problems(drawn) == [], width
        assert page.locator(".no-data").count() == 0
        assert "fct_orders" in page.locator("#panel-tests-by-model").inner_text()
        assert "orders: 1 row(s)" in page.locator("#panel-reconciliation").inner_text()
        assert page.locator(".runs-table tbody tr").count() == 3
        assert console == [], console
        page.close()


def test_docs_site_shows_the_models(module_env: tuple[Settings, Endpoints], browser: Any) -> None:
    settings, endpoints = module_env
    generate(settings, endpoints)
    server = make_server(settings.dbt_target_dir, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page, _ = open_page(
            browser, f"http://127.0.0.1:{server.server_address[1]}/index.html", 1400
        )
        page.wait_for_function(
            "document.body.innerHTML.includes('customer_features')", timeout=30_000
        )
        dom = page.content()
        page.close()
    finally:
        server.shutdown()
        server.server_close()
    assert "fct_orders" in dom, dom[:2000]
    assert "customer_features" in dom
