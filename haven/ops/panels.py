"""The report's panels: one Plotly chart each (or the sentence saying why there is none), drawn
from rows of the ``ops`` tables. ``haven.ops.report`` queries the rows and lays out the page."""

from __future__ import annotations

import html
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

import plotly.graph_objects as go

COLORS = {
    "completed": "#2e7d32",
    "pass": "#2e7d32",
    "failed": "#c62828",
    "fail": "#c62828",
    "error": "#c62828",
    "warn": "#ef6c00",
    "budget": "#ef6c00",
    "default": "#1565c0",
    "muted": "#90a4ae",
}
TASK_ORDER = ["ingest", "build", "freshness", "reconcile", "docs", "record", "report"]
PLOT_CONFIG = {"responsive": True, "displaylogo": False, "modeBarButtonsToRemove": ["lasso2d"]}


@dataclass(frozen=True)
class Panel:
    """One dashboard panel: a chart, or the sentence saying why there is none yet."""

    key: str
    title: str
    explanation: str
    figure: go.Figure | None
    empty: str = "No data yet: run `haven run` to record a run."
    footer: str = ""
    """HTML under the chart (a list of what the chart flags)."""
    source: str = ""
    """Which run the panel is drawn from, when not the latest run (it did not reach the step)."""

    def html(self) -> str:
        heading = f"<h2>{html.escape(self.title)}</h2><p class='explain'>{html.escape(self.explanation)}</p>"
        if self.source:
            heading += f"<p class='source'>{html.escape(self.source)}</p>"
        if self.figure is None:
            return (
                f"<section class='panel empty' id='panel-{self.key}'>{heading}"
                f"<p class='no-data'>{code_spans(html.escape(self.empty))}</p></section>"
            )
        chart = self.figure.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=f"chart-{self.key}",
            config=PLOT_CONFIG,
            default_width="100%",
        )
        return (
            f"<section class='panel' id='panel-{self.key}'>{heading}{chart}{self.footer}</section>"
        )


def code_spans(text: str) -> str:
    """`command` → <code>command</code> in an escaped sentence."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _layout(figure: go.Figure, *, height: int, y_title: str = "", x_title: str = "") -> go.Figure:
    figure.update_layout(
        template="plotly_white",
        autosize=True,
        height=height,
        # automargin makes room below and left for tick labels, not for half a label that
        # overhangs the right end of the x axis (a tick near the last run's hour did spill)
        # the toolbar sits over the top right of the figure, so the legend goes below the plot
        # (in the container's space: automargin makes room for it, however many rows it takes)
        margin={"l": 10, "r": 36, "t": 30, "b": 10},
        legend={
            "orientation": "h",
            "yref": "container",
            "yanchor": "bottom",
            "y": 0,
            "x": 0,
            "traceorder": "normal",
        },
        hoverlabel={"namelength": -1},
        font={"family": "system-ui, sans-serif", "size": 12},
    )
    figure.update_xaxes(automargin=True, title_text=x_title)
    figure.update_yaxes(automargin=True, title_text=y_title)
    return figure


def _time_axis(figure: go.Figure) -> go.Figure:
    """Runs on a time axis, labelled to the minute (never to the millisecond)."""
    figure.update_xaxes(
        type="date",
        tickformatstops=[
            {"dtickrange": [None, 60_000], "value": "%H:%M:%S"},
            {"dtickrange": [60_000, 86_400_000], "value": "%H:%M<br>%b %d"},
            {"dtickrange": [86_400_000, None], "value": "%b %d"},
        ],
    )
    times = {x for trace in figure.data if trace.type == "scatter" for x in (trace.x or ())}
    if len(times) == 1:  # one run: an hour either side, not a millisecond-wide axis of one label
        (only,) = times
        figure.update_xaxes(range=[only - timedelta(hours=1), only + timedelta(hours=1)])
    return figure


def _bar_height(categories: int) -> int:
    """Horizontal bar charts grow with their categories so every label has its own line."""
    return max(220, 90 + 26 * categories)


def run_time_panel(runs: list[dict[str, Any]], tasks: list[dict[str, Any]]) -> Panel:
    explanation = (
        "Each bar is one run on a time axis, split into its tasks; hover a bar for the run's"
        " tasks, attempts and status. Failed runs are marked with a red cross."
    )
    panel = partial(Panel, "runs", "Run time by task", explanation)
    if not runs:
        return panel(None)
    started = {row["run_id"]: row["started_at"] for row in runs}
    status = {row["run_id"]: row["status"] for row in runs}
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in tasks:
        by_task[row["task_name"]].append(row)
    figure = go.Figure()
    for name in sorted(by_task, key=lambda n: (TASK_ORDER.index(n) if n in TASK_ORDER else 99, n)):
        rows = by_task[name]
        figure.add_bar(
            name=name,
            x=[started[row["run_id"]] for row in rows],
            y=[row["seconds"] for row in rows],
            customdata=[[row["attempts"], row["status"], status[row["run_id"]]] for row in rows],
            hovertemplate=f"{name}: %{{y:.1f}} s, %{{customdata[0]}} attempt(s), %{{customdata[1]}}"
            "<br>run %{customdata[2]}, %{x|%Y-%m-%d %H:%M}<extra></extra>",
        )
    failed = [row for row in runs if row["status"] == "failed"]
    if failed:
        figure.add_scatter(
            name="failed run",
            mode="markers",
            x=[row["started_at"] for row in failed],
            y=[row["wall_seconds"] or 0 for row in failed],
            marker={"symbol": "x", "size": 11, "color": COLORS["failed"]},
            customdata=[[row["error"] or ""] for row in failed],
            hovertemplate="failed: %{customdata[0]}<extra></extra>",
        )
    figure.update_layout(barmode="stack")
    return panel(_time_axis(_layout(figure, height=340, y_title="seconds")))


def tests_per_run_panel(runs: list[dict[str, Any]]) -> Panel:
    explanation = "Data and unit tests that passed, warned and failed in each run."
    panel = partial(Panel, "tests", "Tests per run", explanation)
    tested = [
        row
        for row in runs
        if (row["tests_passed"] or 0) + (row["tests_failed"] or 0) + (row["tests_warned"] or 0)
    ]
    if not tested:
        return panel(None, "No data yet: no run has run tests.")
    figure = go.Figure()
    for column, name in (
        ("tests_passed", "pass"),
        ("tests_warned", "warn"),
        ("tests_failed", "fail"),
    ):
        figure.add_bar(
            name=name,
            x=[row["started_at"] for row in tested],
            y=[row[column] or 0 for row in tested],
            marker_color=COLORS[name],
            hovertemplate=f"%{{y}} {name}<br>%{{x|%Y-%m-%d %H:%M}}<extra></extra>",
        )
    failing = [row for row in tested if (row["tests_failed"] or 0) > 0]
    if failing:  # a red cross over the bar, however small the failing share
        figure.add_scatter(
            name="run with failed tests",
            mode="markers",
            x=[row["started_at"] for row in failing],
            y=[
                (row["tests_passed"] or 0) + (row["tests_warned"] or 0) + row["tests_failed"]
                for row in failing
            ],
            marker={"symbol": "x", "size": 12, "color": COLORS["failed"]},
            customdata=[[row["tests_failed"]] for row in failing],
            hovertemplate="%{customdata[0]} failed<br>%{x|%Y-%m-%d %H:%M}<extra></extra>",
        )
    figure.update_layout(barmode="stack")
    return panel(_time_axis(_layout(figure, height=300, y_title="tests")))


def tests_by_model_panel(results: list[dict[str, Any]]) -> Panel:
    explanation = (
        "Tests of the latest run that ran tests, grouped by the model or source table they check;"
        " models with a failing test come first."
    )
    panel = partial(Panel, "tests-by-model", "Test results by model", explanation)
    if not results:
        return panel(None, "No data yet: no run has run tests.")
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in results:
        outcome = "fail" if row["status"] in {"fail", "error", "runtime error"} else row["status"]
        counts[row["model"] or "whole project"][outcome] += 1
    models = sorted(counts, key=lambda m: (-counts[m]["fail"], -counts[m]["warn"], m), reverse=True)
    figure = go.Figure()
    for outcome in ("pass", "warn", "fail"):
        values = [counts[model][outcome] for model in models]
        if any(values):
            figure.add_bar(
                name=outcome,
                orientation="h",
                y=models,
                x=values,
                marker_color=COLORS[outcome],
                hovertemplate=f"%{{y}}: %{{x}} {outcome}<extra></extra>",
            )
    figure.update_layout(barmode="stack")
    return panel(
        _layout(figure, height=_bar_height(len(models)), x_title="tests"),
    )


def rows_loaded_panel(runs: list[dict[str, Any]], tables: list[dict[str, Any]]) -> Panel:
    explanation = (
        "Rows each run loaded into raw (new, changed and deleted rows), one line per source table;"
        " the axis is logarithmic so a first full load and later small increments both show."
    )
    panel = partial(Panel, "rows", "Rows loaded per run", explanation)
    loaded = [row for row in tables if row["rows_loaded"]]
    if not loaded:
        return panel(None, "No data yet: no run has loaded rows.")
    started = {row["run_id"]: row["started_at"] for row in runs}
    by_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in sorted(loaded, key=lambda row: started[row["run_id"]]):
        by_table[row["table_name"]].append(row)
    figure = go.Figure()
    for name in sorted(by_table):
        rows = by_table[name]
        figure.add_scatter(
            name=name,
            mode="lines+markers",
            x=[started[row["run_id"]] for row in rows],
            y=[row["rows_loaded"] for row in rows],
            hovertemplate=f"{name}: %{{y:,}} rows<br>%{{x|%Y-%m-%d %H:%M}}<extra></extra>",
        )
    figure.update_yaxes(type="log")
    return panel(_time_axis(_layout(figure, height=340, y_title="rows")))


def freshness_panel(freshness: list[dict[str, Any]]) -> Panel:
    explanation = (
        "How long ago each source table last received data (latest run), against the warn and"
        " error thresholds declared in its dbt source."
    )
    panel = partial(Panel, "freshness", "Freshness against thresholds", explanation)
    if not freshness:
        return panel(None, "No data yet: no run has checked freshness.")
    tables = [row["source_table"] for row in freshness]
    hours = [(row["lag_seconds"] or 0) / 3600 for row in freshness]
    figure = go.Figure()
    figure.add_bar(
        name="hours since last data",
        orientation="h",
        y=tables,
        x=hours,
        marker_color=[COLORS.get(row["status"], COLORS["default"]) for row in freshness],
        customdata=[[row["status"]] for row in freshness],
        text=[_duration(row["lag_seconds"]) for row in freshness],
        textposition="outside",
        cliponaxis=False,
        hovertemplate="%{y}: %{text} (%{customdata[0]})<extra></extra>",
    )
    for column, name, color in (
        ("warn_after_seconds", "warn after", COLORS["warn"]),
        ("error_after_seconds", "error after", COLORS["failed"]),
    ):
        marked = [row for row in freshness if row[column]]
        if marked:
            figure.add_scatter(
                name=name,
                mode="markers",
                y=[row["source_table"] for row in marked],
                x=[row[column] / 3600 for row in marked],
                marker={"symbol": "line-ns-open", "size": 18, "line": {"width": 3}, "color": color},
                hovertemplate=f"{name} %{{x:.0f}} h<extra></extra>",
            )
    return panel(
        _layout(figure, height=_bar_height(len(tables)), x_title="hours"),
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "never loaded"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def quarantine_panel(quarantine: list[dict[str, Any]] | None) -> Panel:
    explanation = (
        "Rows held back from staging now, per source table and the reason they failed a check."
    )
    panel = partial(Panel, "quarantine", "Quarantined rows by reason", explanation)
    if quarantine is None:
        return panel(None, "No data yet: the quarantine model has not been built.")
    if not quarantine:
        return panel(None, "Nothing is quarantined: every raw row passed its checks.")
    rows = sorted(quarantine, key=lambda row: (row["source_table"], row["reason_code"]))
    tables = sorted({row["source_table"] for row in rows})
    palette = ["#1565c0", "#6a1b9a", "#00838f", "#ef6c00", "#5d4037", "#ad1457", "#2e7d32"]
    # one bar per table and reason, labelled with both: no legend to decode, every label on
    # its own line (the chart grows with the pairs), tables told apart by colour too
    labels = [f"{row['source_table']} · {row['reason_code']}" for row in rows]
    figure = go.Figure()
    figure.add_bar(
        orientation="h",
        y=labels[::-1],
        x=[row["rows"] for row in rows][::-1],
        marker_color=[palette[tables.index(row["source_table"]) % len(palette)] for row in rows][
            ::-1
        ],
        text=[f"{row['rows']:,}" for row in rows][::-1],
        textposition="outside",
        cliponaxis=False,
        showlegend=False,
        hovertemplate="%{y}: %{x:,} rows<extra></extra>",
    )
    total = sum(row["rows"] for row in rows)
    return panel(
        _layout(figure, height=_bar_height(len(labels)), x_title="rows"),
        footer=(
            f"<p class='differences warn'>{total:,} reason(s) on quarantined rows of"
            f" {len(tables)} table(s); a row failing two checks counts under each.</p>"
        ),
    )


def reconciliation_panel(
    reconciliation: list[dict[str, Any]], values: list[dict[str, Any]] | None = None
) -> Panel:
    explanation = (
        "Latest run: rows in the source against rows staged plus quarantined, per table; a"
        " difference (source minus both) is marked with a red cross and listed under the chart, with what"
        " each table's last value check (raw against the source, column by column) found."
    )
    panel = partial(Panel, "reconciliation", "Reconciliation", explanation)
    if not reconciliation:
        return panel(None, "No data yet: no run has reconciled the source.")
    tables = [row["table_name"] for row in reconciliation]
    figure = go.Figure()
    for column, name, color in (
        ("source_rows", "source", COLORS["muted"]),
        ("staged_rows", "staged", COLORS["default"]),
        ("quarantined_rows", "quarantined", COLORS["warn"]),
    ):
        figure.add_bar(
            name=name,
            orientation="h",
            y=tables,
            x=[row[column] for row in reconciliation],
            marker_color=color,
            hovertemplate=f"%{{y}}: %{{x:,}} {name}<extra></extra>",
        )
    differing = [row for row in reconciliation if row["row_difference"] or row["amount_difference"]]
    if differing:  # a marker, not a bar: a difference of one row has no length on a log axis
        figure.add_scatter(
            name="difference",
            mode="markers",
            y=[row["table_name"] for row in differing],
            x=[max(row["source_rows"], 1) for row in differing],
            marker={"symbol": "x", "size": 13, "color": COLORS["failed"]},
            customdata=[
                [row["row_difference"], row["amount_difference"] or 0] for row in differing
            ],
            hovertemplate="%{y}: %{customdata[0]:,} row(s), amount %{customdata[1]:,}"
            "<extra></extra>",
        )
    figure.update_layout(barmode="group")
    figure.update_xaxes(type="log")
    if differing:
        items = "".join(
            f"<li>{html.escape(row['table_name'])}: {row['row_difference']:,} row(s)"
            + (
                f", {row['amount_difference']:,} in {html.escape(row['money_column'])}"
                if row["amount_difference"]
                else ""
            )
            + "</li>"
            for row in differing
        )
        footer = f"<ul class='differences failed'>{items}</ul>"
    else:
        footer = (
            f"<p class='differences completed'>Every table reconciles ({len(reconciliation)} of"
            f" {len(reconciliation)}): no row or amount difference.</p>"
        )
    return panel(
        _layout(figure, height=max(260, 100 + 44 * len(tables)), x_title="rows (log scale)"),
        footer=footer + _values_footer(values or []),
    )


def _values_footer(values: list[dict[str, Any]]) -> str:
    """What each table's last value check found: rows that differ (failed), rows read again
    (repaired), or that every checked row matches."""
    if not values:
        return ""
    items = []
    for row in values:
        name = html.escape(row["table_name"])
        when = f"{row['checked_at']:%Y-%m-%d %H:%M}"
        if row["rows_differing"]:
            keys = html.escape(", ".join(row["sample_keys"]))
            items.append(
                f"<li class='failed'>{name}: {row['rows_differing']:,} row(s) differ from the"
                f" source in value (keys {keys}; checked {when} UTC): run"
                " <code>haven ingest --repair</code></li>"
            )
        elif row["rows_repaired"]:
            items.append(
                f"<li class='warn'>{name}: {row['rows_repaired']:,} row(s) differed from the source"
                f" in value and were read again ({when} UTC): an update that did not move"
                " updated_at?</li>"
            )
    if items:
        return f"<ul class='differences values'>{''.join(items)}</ul>"
    compared = sum(row["rows_compared"] for row in values)
    return (
        f"<p class='differences completed'>Values match the source in every table ({compared:,}"
        " rows compared at each table's last check).</p>"
    )


def cost_panel(runs: list[dict[str, Any]], budget_usd: float) -> Panel:
    explanation = (
        "The monthly cost estimated after each run (the schedule's runs at this run's cost),"
        " against the monthly budget; hover for the run's own cost."
    )
    panel = partial(Panel, "cost", "Cost against the budget", explanation)
    costed = [row for row in runs if row["monthly_estimate_usd"] is not None]
    if not costed:
        return panel(None)
    figure = go.Figure()
    figure.add_scatter(
        name="monthly estimate",
        mode="lines+markers",
        x=[row["started_at"] for row in costed],
        y=[row["monthly_estimate_usd"] for row in costed],
        marker={
            "color": [
                COLORS["failed"]
                if row["monthly_estimate_usd"] > budget_usd
                else COLORS["completed"]
                for row in costed
            ]
        },
        line={"color": COLORS["default"]},
        customdata=[[row["cost_usd"] or 0] for row in costed],
        hovertemplate="$%{y:.2f} a month (this run $%{customdata[0]:.4f})"
        "<br>%{x|%Y-%m-%d %H:%M}<extra></extra>",
    )
    figure.add_hline(
        y=budget_usd,
        line_dash="dash",
        line_color=COLORS["budget"],
        annotation_text=f"budget ${budget_usd:,.2f}",
        annotation_position="top left",
    )
    top = max([budget_usd, *(row["monthly_estimate_usd"] for row in costed)])
    figure.update_yaxes(range=[0, top * 1.15], tickprefix="$")
    return panel(_time_axis(_layout(figure, height=300, y_title="USD a month")))
