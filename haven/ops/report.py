"""``haven report``: one self-contained HTML page (inline SVG charts, no scripts, no CDN) drawn from
the ``ops`` tables, so it opens offline and in any browser."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import psycopg

WIDTH, HEIGHT, MARGIN = 640, 220, 44
COLORS = {"completed": "#2e7d32", "failed": "#c62828", "default": "#1565c0", "budget": "#ef6c00"}


def bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    unit: str = "",
    colors: Sequence[str] | None = None,
    reference: tuple[str, float] | None = None,
) -> str:
    """A labelled SVG bar chart; ``reference`` draws a dashed horizontal line (a budget, a target)."""
    if not values:
        return f'<figure class="chart empty"><figcaption>{html.escape(title)}</figcaption><p>No data yet.</p></figure>'
    top = max([*values, reference[1] if reference else 0, 1e-9])
    plot_width, plot_height = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN
    slot = plot_width / len(values)
    bar = max(2.0, slot * 0.7)
    parts = [
        f'<svg class="chart-svg" role="img" aria-label="{html.escape(title)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - MARGIN}" y2="{HEIGHT - MARGIN}" stroke="#999"/>',
        f'<text x="{MARGIN - 6}" y="{MARGIN + 4}" text-anchor="end" class="axis">{_number(top)}{unit}</text>',
        f'<text x="{MARGIN - 6}" y="{HEIGHT - MARGIN}" text-anchor="end" class="axis">0</text>',
    ]
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        height = plot_height * value / top
        x = MARGIN + index * slot + (slot - bar) / 2
        y = HEIGHT - MARGIN - height
        color = colors[index] if colors else COLORS["default"]
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{height:.1f}" fill="{color}">'
            f"<title>{html.escape(label)}: {_number(value)}{unit}</title></rect>"
        )
        if len(values) <= 16:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{HEIGHT - MARGIN + 14}" text-anchor="middle" class="label">'
                f"{html.escape(label[:14])}</text>"
            )
    if reference:
        name, level = reference
        y = HEIGHT - MARGIN - plot_height * level / top
        parts.append(
            f'<line class="reference" x1="{MARGIN}" y1="{y:.1f}" x2="{WIDTH - MARGIN}" y2="{y:.1f}" '
            f'stroke="{COLORS["budget"]}" stroke-dasharray="6 4"/>'
            f'<text x="{WIDTH - MARGIN}" y="{y - 4:.1f}" text-anchor="end" class="axis">{html.escape(name)} '
            f"{_number(level)}{unit}</text>"
        )
    parts.append("</svg>")
    return f'<figure class="chart"><figcaption>{html.escape(title)}</figcaption>{"".join(parts)}</figure>'


def _number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{value:.3g}" if value else "0"


def render(conn: psycopg.Connection, *, budget_usd: float) -> str:
    """The page, from the last 50 runs and the latest run's details."""
    runs = conn.execute(
        "select run_id, started_at, status, wall_seconds, tests_passed, tests_failed, cost_usd,"
        " monthly_estimate_usd from ops.runs order by started_at desc limit 50"
    ).fetchall()[::-1]
    latest = runs[-1][0] if runs else None
    labels = [f"{row[1]:%m-%d %H:%M}" for row in runs]
    charts = [
        bar_chart(
            "Run duration (s)",
            labels,
            [float(row[3] or 0) for row in runs],
            unit=" s",
            colors=[COLORS.get(row[2], COLORS["default"]) for row in runs],
        ),
        bar_chart(
            "Test pass rate (%)",
            labels,
            [100.0 * (row[4] or 0) / max((row[4] or 0) + (row[5] or 0), 1) for row in runs],
            unit=" %",
            reference=("target", 100.0),
        ),
        bar_chart("Cost per run (USD)", labels, [float(row[6] or 0) for row in runs], unit=" $"),
    ]
    monthly = float(runs[-1][7] or 0) if runs else 0.0
    charts.append(
        bar_chart(
            "Monthly estimate vs budget (USD)",
            ["estimate"],
            [monthly],
            unit=" $",
            colors=[COLORS["failed"] if monthly > budget_usd else COLORS["completed"]],
            reference=("budget", budget_usd),
        )
    )
    tables = conn.execute(
        "select table_name, rows_loaded from ops.run_tables where run_id = %s order by table_name",
        (latest,),
    ).fetchall()
    charts.append(
        bar_chart(
            "Rows loaded per table (latest run)",
            [r[0] for r in tables],
            [float(r[1]) for r in tables],
        )
    )
    reconciliation = conn.execute(
        "select table_name, raw_rows, quarantined_rows, row_difference from ops.reconciliation"
        " where run_id = %s order by table_name",
        (latest,),
    ).fetchall()
    charts.append(
        bar_chart(
            "Rows in raw per table",
            [r[0] for r in reconciliation],
            [float(r[1]) for r in reconciliation],
        )
    )
    charts.append(
        bar_chart(
            "Quarantined rows per table",
            [r[0] for r in reconciliation],
            [float(r[2]) for r in reconciliation],
        )
    )
    charts.append(
        bar_chart(
            "Reconciliation differences (rows)",
            [r[0] for r in reconciliation],
            [float(r[3]) for r in reconciliation],
            colors=[COLORS["failed"] if r[3] else COLORS["completed"] for r in reconciliation],
        )
    )
    freshness = conn.execute(
        "select source_table, lag_seconds / 60.0, status from ops.source_freshness where run_id = %s"
        " order by source_table",
        (latest,),
    ).fetchall()
    charts.append(
        bar_chart(
            "Freshness lag (minutes)",
            [r[0] for r in freshness],
            [float(r[1] or 0) for r in freshness],
            unit=" min",
            colors=[COLORS["completed"] if r[2] == "pass" else COLORS["failed"] for r in freshness],
            reference=("warn", 360.0),
        )
    )
    rows = "".join(
        f"<tr><td>{row[1]:%Y-%m-%d %H:%M:%S}</td><td class='{html.escape(row[2])}'>{html.escape(row[2])}</td>"
        f"<td>{(row[3] or 0):.1f}</td><td>{row[4] or 0}</td><td>{row[5] or 0}</td><td>{(row[6] or 0):.4f}</td></tr>"
        for row in reversed(runs[-15:])
    )
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Clutter Haven pipeline report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(660px, 1fr)); gap: 1rem; }}
figure.chart {{ margin: 0; padding: .5rem; border: 1px solid #ddd; border-radius: 6px; }}
figcaption {{ font-weight: 600; margin-bottom: .25rem; }}
.axis, .label {{ font-size: 10px; fill: #555; }}
table {{ border-collapse: collapse; margin-top: 1rem; }}
td, th {{ border-bottom: 1px solid #eee; padding: .25rem .75rem; text-align: right; }}
td.failed {{ color: #c62828; }} td.completed {{ color: #2e7d32; }}
</style>
</head>
<body>
<h1>Clutter Haven pipeline report</h1>
<p>Generated {generated} from the <code>ops</code> schema: {len(runs)} run(s); monthly estimate
${monthly:.2f} against a ${budget_usd:.2f} budget.</p>
<div class="grid">
{"".join(charts)}
</div>
<h2>Recent runs</h2>
<table><tr><th>started</th><th>status</th><th>seconds</th><th>tests passed</th><th>tests failed</th><th>cost $</th></tr>
{rows}
</table>
</body>
</html>
"""


def write(conn: psycopg.Connection, path: Path, *, budget_usd: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(conn, budget_usd=budget_usd))
    return path
