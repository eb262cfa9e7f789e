"""``haven report``: one self-contained HTML dashboard of the ``ops`` tables, charted with Plotly
(its JavaScript inlined once, so the page opens offline, with no CDN): run time by task across
runs, tests per run and by model, rows loaded, freshness against its thresholds, quarantine by
reason, reconciliation, and cost against the budget. A panel with nothing to show says so."""

from __future__ import annotations

import html
import re
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import psycopg
from plotly.offline import get_plotlyjs
from psycopg.rows import dict_row

from haven.ops.status import LATEST_VALUE_CHECKS

RUNS_SHOWN = 100
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
BOOKKEEPING = frozenset({"record", "report"})
"""Tasks that write the run's own record: in the runs table, not in the run-time chart."""
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
                f"<p class='no-data'>{_code(html.escape(self.empty))}</p></section>"
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


def _code(text: str) -> str:
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


def _query(
    conn: psycopg.Connection, sql: str, params: tuple[Any, ...] = ()
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(sql, params).fetchall()


def _latest_run_with(conn: psycopg.Connection, table: str) -> dict[str, Any] | None:
    """The latest run that wrote rows into ``ops.<table>`` (a step it reached), or None."""
    rows = _query(
        conn,
        f"select r.run_id, r.started_at from ops.runs as r where exists"  # noqa: S608 - our names
        f" (select from ops.{table} as t where t.run_id = r.run_id)"
        " order by r.started_at desc limit 1",
    )
    return rows[0] if rows else None


def _failed_task(tasks: list[dict[str, Any]], run_id: Any) -> str | None:
    failed = [
        row["task_name"] for row in tasks if row["run_id"] == run_id and row["status"] == "failed"
    ]
    return failed[0] if failed else None


def _drawn_from(
    run: dict[str, Any] | None, latest: dict[str, Any] | None, tasks: list[dict[str, Any]]
) -> str:
    """Says which run a panel shows when it is not the latest (which did not reach the step)."""
    if run is None or latest is None or run["run_id"] == latest["run_id"]:
        return ""
    failed = _failed_task(tasks, latest["run_id"])
    why = f"failed at {failed}" if failed else f"{latest['status']} before this step"
    return (
        f"From the run of {run['started_at']:%Y-%m-%d %H:%M} UTC, the latest to reach this step;"
        f" the latest run ({latest['started_at']:%Y-%m-%d %H:%M} UTC) {why}."
    )


@dataclass(frozen=True)
class Dashboard:
    """What the page shows: its panels, the runs (oldest first) and their tasks, and the
    problems listed under the headline (each a CSS class and a sentence of HTML)."""

    panels: list[Panel]
    runs: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    problems: list[tuple[str, str]]
    failing_since: tuple[int, datetime | None]
    """Runs failed in a row up to the latest, and when the first of them started."""


def collect(conn: psycopg.Connection, *, budget_usd: float) -> Dashboard:
    """The dashboard, from the last runs. A panel whose step the latest run did not reach is
    drawn from the latest run that did, and says so."""
    runs = _query(
        conn,
        "select run_id, started_at, engine, status, error, wall_seconds, tests_passed, tests_failed,"
        " tests_warned, cost_usd, monthly_estimate_usd, rows_loaded from ops.runs"
        " order by started_at desc limit %s",
        (RUNS_SHOWN,),
    )[::-1]
    run_ids = [row["run_id"] for row in runs]
    latest = runs[-1] if runs else None
    tasks = _query(
        conn,
        "select run_id, task_name, seconds, attempts, status from ops.run_tasks"
        " where run_id = any(%s)",
        (run_ids,),
    )
    tables = _query(
        conn,
        "select run_id, table_name, rows_loaded from ops.run_tables where run_id = any(%s)",
        (run_ids,),
    )
    tested = _query(
        conn,
        "select run_id, started_at from ops.runs where tests_passed + tests_failed + tests_warned > 0"
        " order by started_at desc limit 1",
    )
    tested_run = tested[0] if tested else None
    results = _query(
        conn,
        "select unique_id, model, status from ops.dbt_results where run_id = %s"
        " and resource_type in ('test', 'unit_test')",
        (tested_run["run_id"] if tested_run else None,),
    )
    freshness_run = _latest_run_with(conn, "source_freshness")
    freshness = _query(
        conn,
        "select source_table, lag_seconds, status, warn_after_seconds, error_after_seconds"
        " from ops.source_freshness where run_id = %s order by source_table desc",
        (freshness_run["run_id"] if freshness_run else None,),
    )
    reconciled_run = _latest_run_with(conn, "reconciliation")
    reconciliation = _query(
        conn,
        "select table_name, source_rows, staged_rows, quarantined_rows, row_difference,"
        " money_column, amount_difference from ops.reconciliation where run_id = %s"
        " order by table_name desc",
        (reconciled_run["run_id"] if reconciled_run else None,),
    )
    values = (
        _query(conn, LATEST_VALUE_CHECKS)
        if _query(conn, "select to_regclass('ops.value_checks') is not null as present")[0][
            "present"
        ]
        else []
    )
    quarantine = None
    if _query(conn, "select to_regclass('quarantine.quarantined_rows') is not null as present")[0][
        "present"
    ]:
        quarantine = _query(
            conn,
            "select source_table, reason_code, count(*) as rows"
            " from quarantine.quarantined_rows, unnest(reason_codes) as reason_code group by 1, 2",
        )
    streak = _query(
        conn,
        "select count(*) as runs, min(started_at) as since from ops.runs where status = 'failed'"
        " and started_at > coalesce((select max(started_at) from ops.runs"
        " where status <> 'failed'), '-infinity')",
    )[0]
    drawn = [
        run_time_panel(runs, [row for row in tasks if row["task_name"] not in BOOKKEEPING]),
        cost_panel(runs, budget_usd),
        tests_per_run_panel(runs),
        rows_loaded_panel(runs, tables),
        replace(freshness_panel(freshness), source=_drawn_from(freshness_run, latest, tasks)),
        quarantine_panel(quarantine),
        replace(
            reconciliation_panel(reconciliation, values),
            source=_drawn_from(reconciled_run, latest, tasks),
        ),
        replace(tests_by_model_panel(results), source=_drawn_from(tested_run, latest, tasks)),
    ]
    problems = _problems(results, freshness, reconciliation, values, quarantine)
    return Dashboard(drawn, runs, tasks, problems, (int(streak["runs"]), streak["since"]))


def _problems(
    results: list[dict[str, Any]],
    freshness: list[dict[str, Any]],
    reconciliation: list[dict[str, Any]],
    values: list[dict[str, Any]],
    quarantine: list[dict[str, Any]] | None,
) -> list[tuple[str, str]]:
    """Everything a panel flags, as one line each, however small its share of the chart."""
    from haven.transform.dbt import node_name

    found = []
    failing = sorted(
        node_name(row["unique_id"])
        for row in results
        if row["status"] in {"fail", "error", "runtime error"}
    )
    if failing:
        names = ", ".join(html.escape(name) for name in failing[:5])
        more = f" and {len(failing) - 5} more" if len(failing) > 5 else ""
        found.append(("failed", f"{len(failing)} test(s) failed: {names}{more}."))
    for status, css in (("error", "failed"), ("warn", "warn")):
        late = sorted(row["source_table"] for row in freshness if row["status"] == status)
        if late:
            names = ", ".join(html.escape(name.split(".")[-1]) for name in late)
            found.append((css, f"{len(late)} source(s) past their {status} threshold: {names}."))
    for row in sorted(reconciliation, key=lambda row: row["table_name"]):
        if row["row_difference"] or row["amount_difference"]:
            amount = (
                f", {row['amount_difference']:,} in {html.escape(row['money_column'])}"
                if row["amount_difference"]
                else ""
            )
            found.append(
                (
                    "failed",
                    f"Reconciliation: {html.escape(row['table_name'])} off by"
                    f" {row['row_difference']:,} row(s){amount}.",
                )
            )
    for row in values:
        if row["rows_differing"]:
            found.append(
                (
                    "failed",
                    f"Values: {row['rows_differing']:,} row(s) of {html.escape(row['table_name'])}"
                    " differ from the source; run <code>haven ingest --repair</code>.",
                )
            )
    if quarantine:
        held = sum(row["rows"] for row in quarantine)
        tables = len({row["source_table"] for row in quarantine})
        found.append(
            ("warn", f"{held:,} quarantine reason(s) on rows of {tables} table(s) (below).")
        )
    return found


def _runs_table(runs: list[dict[str, Any]], tasks: list[dict[str, Any]]) -> str:
    """The last runs with each task's seconds: one run's tasks on one line."""
    if not runs:
        return "<p class='no-data'>No data yet: run <code>haven run</code> to record a run.</p>"
    recent = runs[-15:][::-1]
    shown = {row["run_id"] for row in recent}
    seconds: dict[Any, dict[str, str]] = defaultdict(dict)
    for row in (task for task in tasks if task["run_id"] in shown):
        retries = f" ×{row['attempts']}" if row["attempts"] > 1 else ""
        seconds[row["run_id"]][row["task_name"]] = f"{row['seconds']:.1f}{retries}"
    ran = {name for tasks in seconds.values() for name in tasks}
    columns = [name for name in TASK_ORDER if name in ran] + sorted(ran - set(TASK_ORDER))
    header = "".join(f"<th>{name}</th>" for name in columns)
    lines = []
    for row in recent:
        cells = "".join(f"<td>{seconds[row['run_id']].get(name, '')}</td>" for name in columns)
        error = html.escape(row["error"] or "")
        lines.append(
            f"<tr><td>{row['started_at']:%Y-%m-%d %H:%M}</td><td>{html.escape(row['engine'])}</td>"
            f"<td class='{html.escape(row['status'])}' title='{error}'>{html.escape(row['status'])}</td>"
            f"<td>{(row['wall_seconds'] or 0):.1f}</td>{cells}"
            f"<td>{row['tests_passed'] or 0}</td><td>{row['tests_failed'] or 0}</td>"
            f"<td>{(row['cost_usd'] or 0):.4f}</td></tr>"
        )
    return (
        "<div class='scroll'><table><thead><tr><th>started (UTC)</th><th>engine</th><th>status</th><th>total s</th>"
        f"{header}<th>tests ok</th><th>failed</th><th>cost $</th></tr></thead><tbody>"
        f"{''.join(lines)}</tbody></table></div>"
    )


def render(conn: psycopg.Connection, *, budget_usd: float) -> str:
    """The page, from the last runs and the latest run's details."""
    dashboard = collect(conn, budget_usd=budget_usd)
    drawn, runs, tasks = dashboard.panels, dashboard.runs, dashboard.tasks
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    summary = _headline(dashboard, budget_usd)
    if dashboard.problems:
        items = "".join(f"<li class='{css}'>{_code(text)}</li>" for css, text in dashboard.problems)
        problems = f"<ul class='problems'>{items}</ul>"
    elif runs:
        problems = "<p class='problems completed'>Nothing needs attention.</p>"
    else:
        problems = ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Clutter Haven pipeline report</title>
<link rel="icon" href="data:,">
<script>{get_plotlyjs()}</script>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; background: #f6f7f9; }}
h1 {{ margin: 0 0 .25rem; font-size: 1.6rem; }}
.summary {{ margin: 0 0 1rem; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 600px), 1fr)); gap: 1rem; }}
.panel {{ background: #fff; border: 1px solid #dde1e6; border-radius: 8px; padding: .75rem 1rem; min-width: 0; }}
.panel h2 {{ font-size: 1.05rem; margin: 0; }}
.explain {{ color: #555; font-size: .85rem; margin: .2rem 0 .5rem; }}
.no-data {{ color: #666; font-style: italic; padding: 2rem 0; text-align: center; }}
.scroll {{ overflow-x: auto; }}
table {{ border-collapse: collapse; background: #fff; font-size: .85rem; }}
td, th {{ border-bottom: 1px solid #eee; padding: .3rem .6rem; text-align: right; white-space: nowrap; }}
.failed {{ color: #c62828; }} .completed {{ color: #2e7d32; }} .warn {{ color: #ef6c00; }}
.runs-table {{ margin-top: 1rem; }}
.differences {{ font-size: .85rem; margin: .25rem 0 0; }}
.problems {{ margin: 0 0 1rem; padding: .5rem 1rem .5rem 2rem; background: #fff; border: 1px solid #dde1e6; border-radius: 8px; }}
p.problems {{ padding-left: 1rem; }}
.source {{ color: #ef6c00; font-size: .85rem; margin: 0 0 .5rem; }}
</style>
</head>
<body>
<h1>Clutter Haven pipeline report</h1>
<p class="summary">{summary} Generated {generated} from the <code>ops</code> schema ({len(runs)} run(s) shown).</p>
{problems}
<div class="grid">
{"".join(panel.html() for panel in drawn)}
</div>
<section class="panel runs-table">
<h2>Recent runs, task by task (seconds; ×N = attempts)</h2>
{_runs_table(runs, tasks)}
</section>
<script>
// Each chart sized itself as the grid filled in; size them again to their final panels.
window.addEventListener("load", () => {{
    document.querySelectorAll(".js-plotly-plot").forEach((chart) => Plotly.Plots.resize(chart));
}});
</script>
</body>
</html>
"""


def _headline(dashboard: Dashboard, budget_usd: float) -> str:
    """One sentence on the latest run; a failed run's says where it failed, why, and since
    when runs have been failing."""
    if not dashboard.runs:
        return "No run recorded yet: run <code>haven run</code>, then <code>haven report</code>."
    latest = dashboard.runs[-1]
    monthly = latest["monthly_estimate_usd"] or 0.0
    status = html.escape(latest["status"])
    when = f"{latest['started_at']:%Y-%m-%d %H:%M} UTC"
    cost = f"monthly estimate ${monthly:,.2f} against a ${budget_usd:,.2f} budget."
    spent = f"M{cost[1:]}"  # as a sentence of its own
    if latest["status"] == "failed":
        task = _failed_task(dashboard.tasks, latest["run_id"])
        where = f" at <b>{html.escape(task)}</b>" if task else ""
        error = html.escape(latest["error"] or "no error was recorded")
        count, since = dashboard.failing_since
        streak = (
            f" Runs have failed {count} times in a row, since {since:%Y-%m-%d %H:%M} UTC."
            if count > 1 and since is not None
            else " The run before it did not fail."
        )
        return (
            f"Latest run {when}: <b class='failed'>failed</b>{where} after"
            f" {(latest['wall_seconds'] or 0):.1f} s on {html.escape(latest['engine'])}:"
            f" <span class='failed'>{error}</span>.{streak} {spent}"
        )
    return (
        f"Latest run {when}: <b class='{status}'>{status}</b> on {html.escape(latest['engine'])}"
        f" in {(latest['wall_seconds'] or 0):.1f} s, {latest['tests_passed'] or 0} tests passed,"
        f" {latest['tests_failed'] or 0} failed; {cost}"
    )


def write(conn: psycopg.Connection, path: Path, *, budget_usd: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(conn, budget_usd=budget_usd))
    return path
