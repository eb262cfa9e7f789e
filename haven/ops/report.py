"""``haven report``: one self-contained HTML dashboard of the ``ops`` tables, charted with Plotly
(its JavaScript inlined once, so the page opens offline, with no CDN): run time by task across
runs, tests per run and by model, rows loaded, freshness against its thresholds, quarantine by
reason, reconciliation, and cost against the budget (the charts: ``haven.ops.panels``), under a
headline that says what is wrong. A panel with nothing to show says so."""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from plotly.offline import get_plotlyjs
from psycopg.rows import dict_row

from haven.ops.panels import (
    TASK_ORDER,
    Panel,
    code_spans,
    cost_panel,
    freshness_panel,
    quarantine_panel,
    reconciliation_panel,
    rows_loaded_panel,
    run_time_panel,
    tests_by_model_panel,
    tests_per_run_panel,
)
from haven.ops.status import latest_value_checks

RUNS_SHOWN = 100
BOOKKEEPING = frozenset({"record", "report"})
"""Tasks that write the run's own record: in the runs table, not in the run-time chart."""


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
    values = latest_value_checks(conn)
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
        items = "".join(
            f"<li class='{css}'>{code_spans(text)}</li>" for css, text in dashboard.problems
        )
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
