"""The funnel: rows in and out of every step, why rows went, and where the time went."""

from __future__ import annotations

from typing import Any

from curate.runstore import funnel
from curate_report import charts
from curate_report.html import Html, badge, esc, join, number, percent, table
from curate_report.rundata import RunData

ORDER = 10


def reason_colors(rows: list[dict[str, Any]]) -> dict[str, str]:
    reasons = sorted({reason for row in rows for reason in row["dropped"]})
    return {reason: charts.CATEGORICAL[i % len(charts.CATEGORICAL)] for i, reason in enumerate(reasons)}


def build(data: RunData) -> dict[str, Any] | None:
    rows = funnel(data.manifest)
    if not rows:
        return None
    colors = reason_colors(rows)
    body = []
    for row in rows:
        dropped = join((badge(f"{reason} {number(count)}", colors[reason]) for reason, count in row["dropped"].items()),
                       " ") or Html('<span class="muted">–</span>')
        state = ("cached" if row["cached"] else "") if row["complete"] else Html('<span class="bad">incomplete</span>')
        body.append([row["index"], Html(f"<b>{esc(row['label'])}</b> <span class='muted'>{esc(row['step'])}</span>"),
                     number(row["rows_in"]), number(row["rows_out"]), percent(row["rows_out"], row["rows_in"]),
                     dropped, f"{row['seconds']:.2f}" if row["seconds"] is not None else "–", state])
    html = table(["#", "step", "rows in", "rows out", "kept", "dropped", "seconds", ""], body,
                 numeric=(0, 2, 3, 4, 6), class_="funnel")
    if any(row["rows_in"] is not None for row in rows):
        html = Html(charts.chart(lambda figure: draw(figure, rows, colors), height=1.0 + 0.36 * len(rows) + 0.2 * ((len(colors) + 4) // 4),
                                 alt="rows kept and dropped per step, and seconds per step") + html)
    return {"title": "Funnel", "html": html, "order": ORDER}


def draw(figure: Any, rows: list[dict[str, Any]], colors: dict[str, str]) -> None:
    from matplotlib.ticker import FuncFormatter

    counts, seconds = figure.subplots(1, 2, sharey=True, width_ratios=[3, 1])
    labels = [charts.short(f"{row['index']} {row['label']}") for row in rows]
    positions = list(range(len(rows)))
    kept = [row["rows_out"] or 0 for row in rows]
    counts.barh(positions, kept, color=charts.KEPT, label="kept", height=0.65)
    left = list(kept)
    for reason, color in colors.items():
        widths = [row["dropped"].get(reason, 0) for row in rows]
        counts.barh(positions, widths, left=left, color=color, label=charts.short(reason, 32), height=0.65)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    counts.set_yticks(positions, labels)
    counts.invert_yaxis()
    counts.xaxis.set_major_formatter(FuncFormatter(charts.thousands))
    counts.set_title("rows: kept, and dropped by reason")
    counts.grid(axis="y", visible=False)
    if colors:
        figure.legend(*counts.get_legend_handles_labels(), loc="outside lower center", fontsize=8,
                      ncols=min(4, len(colors) + 1))
    times = [row["seconds"] or 0 for row in rows]
    bar_colors = [charts.MUTED if row["cached"] else charts.TIME for row in rows]
    seconds.barh(positions, times, color=bar_colors, height=0.65)
    seconds.set_title("seconds" + (" (grey: cached)" if any(row["cached"] for row in rows) else ""))
    seconds.grid(axis="y", visible=False)
