"""The report page and the dbt docs site in a real headless Chromium (Debian's package, driven by
Playwright): at 1400 and 800 px the dashboard loads without console errors, every panel with data
draws marks, labels do not overlap or spill out of their chart, and the docs site shows the models.
Screenshots are kept under the test's temporary directory."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from haven.ops.cost import estimate
from haven.ops.docs import generate, make_server
from haven.ops.history import RunRecord, TaskTiming, ensure_schema, record
from haven.ops.reconcile import Reconciliation
from haven.ops.report import write
from haven.settings import PROJECT_DIR, Settings
from haven.transform.dbt import ArtifactResult, SourceFreshness
from haven.warehouse.connection import connect
from haven.warehouse.endpoints import TRANSFORMER, Endpoints
from ingestion.app.values import ValueCheck
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
    const legend = chart.querySelector('.legend');
    const categories = chart.data.filter((trace) => trace.type === 'bar' && trace.orientation === 'h')
        .flatMap((trace) => [...trace.y]);
    return {
        id: chart.id,
        chart: box(chart.querySelector('.main-svg')),
        panel: box(chart.closest('.panel')),
        plot: box(chart.querySelector('.nsewdrag')),
        toolbar: box(chart.querySelector('.modebar')),
        legend: legend && chart.layout.showlegend !== false ? box(legend) : null,
        categories: [...new Set(categories.map(String))],
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
        if chart.get("legend"):
            problems += [
                f"{chart['id']}: the legend lies over the {part}"
                for part in ("plot", "toolbar")
                if chart.get(part) and _overlaps(chart["legend"], chart[part])
            ]
        labels = {label["text"] for label in chart["groups"]["yticks"]}
        problems += [
            f"{chart['id']}: category {category!r} has no label"
            for category in chart.get("categories", [])
            if category not in labels
        ]
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
    """The checker itself can fail: overlapping labels, a chart wider than its panel, no marks,
    a legend over the plot or the toolbar, a category without its label."""
    box = {"left": 0, "right": 100, "top": 0, "bottom": 100, "text": ""}
    label = {"left": 10, "right": 40, "top": 10, "bottom": 20, "text": "a"}
    chart = {
        "id": "chart-x",
        "chart": {**box, "right": 120},
        "panel": box,
        "plot": {**box, "top": 50},
        "toolbar": {**box, "bottom": 10},
        "legend": {**box, "bottom": 60},
        "categories": ["orders", "payments"],
        "marks": 0,
        "groups": {
            "xticks": [label, {**label, "left": 30, "text": "b"}],
            "yticks": [{**label, "top": 60, "bottom": 70, "text": "orders"}],
            "legend": [],
        },
    }
    assert layout_problems([chart]) == [
        "chart-x is wider or taller than its panel",
        "chart-x draws no marks",
        "chart-x: the legend lies over the plot",
        "chart-x: the legend lies over the toolbar",
        "chart-x: category 'payments' has no label",
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
    conn.execute("delete from ops.runs")
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


def quarantine_reasons() -> dict[str, list[str]]:
    """Every reason code each base model can give a row (the simulator's defects and more),
    read from the models themselves."""
    reasons = {}
    for model in sorted((PROJECT_DIR / "models/staging/app/base").glob("base_app__*.sql")):
        codes = sorted(set(re.findall(r"'([A-Z][A-Z_]{4,})'", model.read_text())))
        reasons[model.stem.removeprefix("base_app__")] = codes
    return reasons


def record_bad_history(conn: Any) -> None:
    """A warehouse in every bad state at once, through the same recording code a run uses:
    a run whose reconciliation found orders off by a row and 777 cents, raw's values differing,
    and a source past its error threshold; then a run failing one of 149 tests; then a run
    whose ingest stopped on a renamed column; and every quarantine reason of every table."""
    ensure_schema(conn)
    conn.execute("delete from ops.runs")
    now = datetime.now(UTC)
    renamed = (
        "schema contract violated, not loaded: reviews: column reviews.rating is in raw_app but"
        " no longer in the source (dropped or renamed): update the staging model that reads it"
        " (models/staging/app/base/base_app__reviews.sql), then run"
        " `haven ingest --resync reviews`"
    )
    for hours, failed_at in ((3, None), (2, "build"), (1, "ingest")):
        started = now - timedelta(hours=hours)
        run = RunRecord(
            started_at=started,
            status="failed" if failed_at else "completed",
            error={
                None: None,
                "build": "dbt build failed: 1 node(s) failed: assert_raw_equals_staged_plus_quarantined",
                "ingest": renamed,
            }[failed_at],
            finished_at=started + timedelta(seconds=40),
            wall_seconds=3.6 if failed_at == "ingest" else 40.0,
        )
        run.tasks.append(
            TaskTiming(
                "ingest", started, 3.0, 1, "failed" if failed_at == "ingest" else "completed"
            )
        )
        run.ingest = IngestReport(
            {"orders": TableReport("orders", 50, 50), "reviews": TableReport("reviews", 9, 9)},
            1.0,
            "1",
            1000,
        )
        if failed_at == "ingest":
            run.ingest.tables["reviews"].problem = renamed
        else:
            run.tasks.append(
                TaskTiming("build", started, 30.0, 1, "failed" if failed_at else "completed")
            )
            run.dbt_results["build"] = [
                ArtifactResult(f"test.p.t{i}_{model}", "test", "pass", 0.1, None, None, model)
                for i in range(37)
                for model in ("fct_orders", "dim_customers", "stg_app__orders", "fct_payments")
            ] + [
                ArtifactResult(
                    "test.p.assert_raw_equals_staged_plus_quarantined",
                    "test",
                    "fail" if failed_at == "build" else "pass",
                    0.1,
                    None,
                    None,
                    None,
                )
            ]
        if failed_at is None:
            run.tasks += [
                TaskTiming("freshness", started, 2.0, 1, "completed"),
                TaskTiming("reconcile", started, 1.0, 1, "completed"),
            ]
            run.freshness = [
                SourceFreshness(name, None, lag, status, 21600.0, 86400.0)
                for name, lag, status in (
                    ("orders", 3600.0, "pass"),
                    ("reviews", 30000.0, "warn"),
                    ("shipments", 100000.0, "error"),
                )
            ]
            run.reconciliation = [
                Reconciliation(
                    "orders",
                    2400,
                    2400,
                    2398,
                    1,
                    "total_cents",
                    Decimal(10777),
                    Decimal(9000),
                    Decimal(1000),
                ),
                Reconciliation("reviews", 900, 900, 900, 0),
            ]
            run.ingest.tables["orders"].values = ValueCheck("orders", "all", 2400, [(17,), (23,)])
        run.cost = estimate(Settings(), cpu=12.0, bytes_moved=1000, warehouse_bytes=10**8)
        record(conn, run)
    conn.execute("create schema if not exists quarantine")
    conn.execute(
        "create table if not exists quarantine.quarantined_rows (source_table text, reason_codes text[])"
    )
    for table, codes in quarantine_reasons().items():
        for index, code in enumerate(codes):
            conn.execute(
                "insert into quarantine.quarantined_rows select %s, array[%s] from generate_series(1, %s)",
                (table, code, 1 + 7 * index),
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


def test_dashboard_shows_what_is_wrong_in_a_warehouse_in_every_bad_state(
    module_env: tuple[Settings, Endpoints],
    served: tuple[Path, str],
    browser: Any,
) -> None:
    """The latest run failed at ingest after a run that failed a test and one that found
    differences and a stale source; rows of every table are quarantined for every reason. The
    headline says where and why the run failed and since when runs fail; the panels the latest
    run did not reach show the run that did; every failure is listed; every label is drawn."""
    _, endpoints = module_env
    directory, base_url = served
    with connect(endpoints.role_url(TRANSFORMER), purpose="warehouse") as conn:
        try:
            record_bad_history(conn)
            write(conn, directory / "report.html", budget_usd=40.0)
        finally:
            conn.rollback()
            conn.execute("drop table if exists quarantine.quarantined_rows")
            conn.execute("delete from ops.runs")
            conn.commit()
    pairs = sum(len(codes) for codes in quarantine_reasons().values())
    for width in (1400, 800):
        page, console = open_page(browser, f"{base_url}/report.html", width)
        page.screenshot(path=str(directory / f"report-bad-{width}.png"), full_page=True)
        summary = " ".join(page.locator(".summary").inner_text().split())
        assert "failed at ingest" in summary and "reviews.rating" in summary, summary
        assert "failed 2 times in a row" in summary, summary
        problems = page.locator(".problems").inner_text()
        for expected in (
            "assert_raw_equals_staged_plus_quarantined",
            "past their error threshold: shipments",
            "orders off by 1 row(s), 777 in total_cents",
            "2 row(s) of orders differ from the source",
        ):
            assert expected in problems, problems
        drawn = page.evaluate(MEASURE)
        assert sorted(chart["id"] for chart in drawn) == sorted(
            f"chart-{key}" for key in PANELS_WITH_DATA
        ), "every panel draws a chart: those the failed run did not reach from an earlier run"
        assert page.locator(".no-data").count() == 0
        assert layout_problems(drawn) == [], width
        quarantine = next(chart for chart in drawn if chart["id"] == "chart-quarantine")
        assert len(quarantine["categories"]) == pairs, "a bar for every table and reason"
        for panel in ("freshness", "reconciliation", "tests-by-model"):
            note = page.locator(f"#panel-{panel} .source").inner_text()
            assert "the latest to reach this step" in note and "failed at ingest" in note
        assert page.locator("#chart-tests .scatterlayer .point").count() == 1, "the failed test"
        assert page.locator("#chart-reconciliation .scatterlayer .point").count() == 1
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
