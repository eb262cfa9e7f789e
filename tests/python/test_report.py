"""The dashboard's panels as pure functions: with nothing recorded each says so in a sentence
instead of drawing empty axes; with data each draws its marks (no warehouse, no browser)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from haven.ops import panels


def test_every_panel_says_no_data_yet_instead_of_empty_axes() -> None:
    empty = [
        panels.run_time_panel([], []),
        panels.cost_panel([], 40.0),
        panels.tests_per_run_panel([]),
        panels.rows_loaded_panel([], []),
        panels.freshness_panel([]),
        panels.quarantine_panel(None),
        panels.reconciliation_panel([]),
        panels.tests_by_model_panel([]),
    ]
    for panel in empty:
        assert panel.figure is None, panel.key
        page = panel.html()
        assert "No data yet" in page and "plotly-graph-div" not in page, panel.key
    assert "<code>haven run</code>" in empty[0].html()


def test_an_empty_quarantine_is_good_news_not_missing_data() -> None:
    panel = panels.quarantine_panel([])
    assert panel.figure is None and "Nothing is quarantined" in panel.html()


def test_every_quarantined_table_and_reason_has_its_own_labelled_bar() -> None:
    rows = [
        {"source_table": table, "reason_code": reason, "rows": count}
        for table, reason, count in (
            ("orders", "TOTAL_NEGATIVE", 29),
            ("orders", "CURRENCY_UNKNOWN", 1),
            ("payments", "AMOUNT_NEGATIVE", 3),
            ("vendors", "COMMISSION_OUT_OF_RANGE", 1),
        )
    ]
    figure = panels.quarantine_panel(rows).figure
    assert figure is not None and len(figure.data) == 1 and figure.data[0].showlegend is False
    assert sorted(figure.data[0].y) == sorted(
        f"{row['source_table']} · {row['reason_code']}" for row in rows
    )
    assert figure.layout.height >= 90 + 26 * len(rows), "a line for every label"


def test_one_failed_test_among_many_is_crossed() -> None:
    started = datetime(2026, 11, 30, 12, tzinfo=UTC)
    runs = [
        {"started_at": started, "tests_passed": 148, "tests_failed": 1, "tests_warned": 0},
        {
            "started_at": started + timedelta(hours=1),
            "tests_passed": 149,
            "tests_failed": 0,
            "tests_warned": 0,
        },
    ]
    figure = panels.tests_per_run_panel(runs).figure
    crosses = [trace for trace in figure.data if trace.type == "scatter"]
    assert len(crosses) == 1 and list(crosses[0].x) == [started] and list(crosses[0].y) == [149]


def test_runs_sit_on_a_time_axis_split_by_task_with_failures_marked() -> None:
    started = datetime(2026, 11, 30, 12, tzinfo=UTC)
    runs = [
        {
            "run_id": 1,
            "started_at": started,
            "status": "completed",
            "wall_seconds": 20.0,
            "error": None,
        },
        {
            "run_id": 2,
            "started_at": started + timedelta(hours=1),
            "status": "failed",
            "wall_seconds": 9.0,
            "error": "dbt build failed",
        },
    ]
    tasks = [
        {"run_id": run, "task_name": name, "seconds": 5.0, "attempts": 1, "status": "completed"}
        for run in (1, 2)
        for name in ("build", "ingest")
    ]
    figure = panels.run_time_panel(runs, tasks).figure
    assert figure is not None
    assert [trace.name for trace in figure.data] == ["ingest", "build", "failed run"]
    assert figure.layout.xaxis.type == "date" and figure.layout.barmode == "stack"
    assert list(figure.data[2].x) == [started + timedelta(hours=1)]


def test_freshness_draws_each_tables_thresholds() -> None:
    rows = [
        {
            "source_table": "orders",
            "lag_seconds": 7200.0,
            "status": "pass",
            "warn_after_seconds": 21600.0,
            "error_after_seconds": 86400.0,
        }
    ]
    figure = panels.freshness_panel(rows).figure
    assert figure is not None
    assert [(trace.name, list(trace.x)) for trace in figure.data] == [
        ("hours since last data", [2.0]),
        ("warn after", [6.0]),
        ("error after", [24.0]),
    ]


def test_reconciliation_lists_each_difference_under_the_chart() -> None:
    rows = [
        {
            "table_name": "payments",
            "source_rows": 10,
            "staged_rows": 8,
            "quarantined_rows": 1,
            "row_difference": 1,
            "money_column": "amount_cents",
            "amount_difference": 250,
        },
        {
            "table_name": "orders",
            "source_rows": 5,
            "staged_rows": 5,
            "quarantined_rows": 0,
            "row_difference": 0,
            "money_column": None,
            "amount_difference": None,
        },
    ]
    panel = panels.reconciliation_panel(rows)
    assert "payments: 1 row(s), 250 in amount_cents" in panel.footer
    assert "orders" not in panel.footer
    balanced = panels.reconciliation_panel(rows[1:])
    assert "Every table reconciles (1 of 1)" in balanced.footer


def test_one_run_gets_an_hour_either_side_not_a_millisecond_axis() -> None:
    started = datetime(2026, 11, 30, 12, tzinfo=UTC)
    run = {"started_at": started, "monthly_estimate_usd": 3.0, "cost_usd": 0.01}
    figure = panels.cost_panel([run], 40.0).figure
    assert figure is not None
    assert list(figure.layout.xaxis.range) == [
        started - timedelta(hours=1),
        started + timedelta(hours=1),
    ]
