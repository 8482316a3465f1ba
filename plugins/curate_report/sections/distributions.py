"""Distributions: CLIP scores (with the filter's threshold), text lengths, image sizes, statuses.

Each column is read twice: at the first step that has it, kept and dropped rows together (the
corpus before anything judged on it), and at the last step (what survived). Both reads are
seeded samples of at most ``SAMPLE_ROWS`` rows, so the plots cost the same for any run size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from curate.duck import quote
from curate_report import charts
from curate_report.html import Html, esc, number, percent, table
from curate_report.rundata import RunData

ORDER = 20
SAMPLE_ROWS = 20_000
BINS = 40


def build(data: RunData) -> dict[str, Any] | None:
    parts = [part for part in (clip_scores(data), text_lengths(data), image_sizes(data), statuses(data)) if part]
    if not parts:
        return None
    return {"title": "Distributions", "html": Html("".join(parts)), "order": ORDER}


# -- reading ------------------------------------------------------------------------------------
class Series:
    """One column's sampled values at one step, for a histogram and a row of statistics."""

    def __init__(self, column: str, record: dict[str, Any], values: np.ndarray, role: str):
        self.column, self.record, self.values, self.role = column, record, values, role

    @property
    def label(self) -> str:
        return f"{self.role}: {self.record['label']}"


def first_and_final(data: RunData, column: str, transform: Any = None) -> list[Series]:
    """The column's values where it first appears (kept and dropped rows) and at the last step."""
    first, final = data.first_with(column), data.final
    out: list[Series] = []
    for record, kind, role in ((first, "all", "before"), (final, "data", "final")):
        if record is None or column not in data.schema(record, kind):
            continue
        if out and record is out[0].record and not record.get("dropped"):
            continue  # nothing was dropped there: the final sample would repeat the first
        values = data.sample(record, [column], SAMPLE_ROWS, kind=kind, where=f"{quote(column)} IS NOT NULL")
        if values.height:
            series = values[column] if transform is None else transform(values[column])
            out.append(Series(column, record, series.cast(pl.Float64).to_numpy(), role))
    if len(out) == 1:
        out[0].role = "all rows"
    return out


# -- CLIP scores --------------------------------------------------------------------------------
def clip_threshold(manifest: dict[str, Any]) -> tuple[str, float] | None:
    """(column, threshold) recorded by a ``clip_filter`` step, from its summary or its params."""
    for record in manifest.get("steps", []):
        if record.get("step") != "clip_filter":
            continue
        summary, params = record.get("summary") or {}, record.get("params") or {}
        threshold = summary.get("threshold", params.get("threshold"))
        if isinstance(threshold, int | float):
            return str(summary.get("column") or params.get("column") or "clip_score"), float(threshold)
    return None


def clip_scores(data: RunData) -> Html | None:
    columns = sorted({name for record in data.steps for name, dtype in data.schema(record).items()
                      if name.startswith("clip_score") and dtype.is_float()})
    threshold = clip_threshold(data.manifest)
    blocks = []
    for column in columns:
        series = first_and_final(data, column)
        if not series:
            continue
        line = threshold[1] if threshold and threshold[0] == column else None
        picture = charts.chart(lambda figure, s=series, t=line: draw_histograms(figure, s, t),
                               height=2.6, alt=f"histogram of {column}")
        note = ""
        if line is not None:
            below = float(np.mean(series[0].values < line))
            note = (f"<p class='caption'>Threshold {line:g} (from the clip_filter step): "
                    f"{below:.1%} of the sampled rows score below it.</p>")
        blocks.append(Html(f"<h3>{esc(column)}</h3>{picture}{note}"))
        blocks.append(stats_table(series))
    if not blocks:
        return None
    return Html("".join(blocks))


# -- text lengths -------------------------------------------------------------------------------
def text_columns(data: RunData) -> list[str]:
    names = {name for record in data.steps for name, dtype in data.schema(record).items()
             if dtype == pl.String and (name == "alt_text" or name.startswith("caption"))}
    names.discard("caption_source")  # a label, not a caption
    return sorted(names, key=lambda name: (name != "alt_text", name))


def text_lengths(data: RunData) -> Html | None:
    groups = [s for s in (first_and_final(data, c, lambda s: s.str.len_chars()) for c in text_columns(data)) if s]
    if not groups:
        return None
    picture = charts.chart(lambda figure: draw_grid(figure, groups, "characters", clip=True),
                           height=2.4 * ((len(groups) + 1) // 2), alt="histograms of text lengths")
    stats = stats_table([s for group in groups for s in group])
    return Html("<h3>Text lengths</h3>" + picture +
                "<p class='caption'>Characters per text; the longest 1% is folded into the last bin.</p>" + stats)


# -- image sizes --------------------------------------------------------------------------------
def image_sizes(data: RunData) -> Html | None:
    record = next((r for r in data.steps if {"width", "height"} <= set(data.schema(r, "all"))), None)
    if record is None or not all(data.schema(record, "all")[c].is_numeric() for c in ("width", "height")):
        return None
    frame = data.sample(record, ["uid", "width", "height"], SAMPLE_ROWS, kind="all",
                        where="width > 0 AND height > 0")
    if frame.height == 0:
        return None
    width = frame["width"].cast(pl.Float64).to_numpy()
    height = frame["height"].cast(pl.Float64).to_numpy()
    picture = charts.chart(lambda figure: draw_sizes(figure, width, height), height=2.6,
                           alt="histograms of image width, height and aspect ratio")
    return Html(f"<h3>Image sizes</h3>{picture}<p class='caption'>{number(frame.height)} sampled images "
                f"at step {esc(record['label'])}, kept and dropped.</p>")


# -- download statuses --------------------------------------------------------------------------
def statuses(data: RunData) -> Html | None:
    record = next((r for r in data.steps if "status" in data.schema(r, "all")), None)
    relation = data.relation(record, "all") if record else None
    if record is None or relation is None:
        return None
    counts = data.query(f'SELECT CAST("status" AS VARCHAR) AS status, count(*) AS rows FROM {relation} '
                        "GROUP BY 1 ORDER BY rows DESC, status")
    if counts.height == 0:
        return None
    total = int(counts["rows"].sum())
    labels = [str(s) if s is not None else "(none)" for s in counts["status"]]
    rows = [int(n) for n in counts["rows"]]
    picture = charts.chart(lambda figure: draw_counts(figure, labels[:12], rows[:12]),
                           height=0.8 + 0.3 * min(len(labels), 12), alt="rows per download status")
    listing = table(["status", "rows", "share"], [[s, number(n), percent(n, total)] for s, n in zip(labels, rows, strict=True)],
                    numeric=(1, 2))
    return Html(f"<h3>Download status</h3>{picture}{listing}"
                f"<p class='caption'>All {number(total)} rows at step {esc(record['label'])}.</p>")


# -- tables and drawing -------------------------------------------------------------------------
def stats_table(series: list[Series]) -> Html:
    rows = []
    for s in series:
        p5, p50, p95 = np.percentile(s.values, [5, 50, 95])
        rows.append([s.column, s.label, number(len(s.values)), f"{s.values.mean():.3g}",
                     f"{p5:.3g}", f"{p50:.3g}", f"{p95:.3g}"])
    return table(["column", "where", "sampled", "mean", "p5", "median", "p95"], rows, numeric=(2, 3, 4, 5, 6),
                 class_="compact")


def bin_edges(series: list[Series], clip: bool) -> np.ndarray:
    values = np.concatenate([s.values for s in series])
    low, high = float(values.min()), float(np.percentile(values, 99) if clip else values.max())
    if high <= low:
        high = low + 1
    return np.linspace(low, high, BINS + 1)


def draw_histograms(axes_or_figure: Any, series: list[Series], threshold: float | None = None,
                    clip: bool = False, xlabel: str | None = None) -> None:
    axes = axes_or_figure.subplots() if hasattr(axes_or_figure, "subplots") else axes_or_figure
    edges = bin_edges(series, clip)
    for s, color in zip(series, (charts.MUTED, charts.ACCENT), strict=False):
        counts, _ = np.histogram(np.clip(s.values, edges[0], edges[-1]), bins=edges)
        # shares, not counts, so a sample of all rows and one of the survivors compare
        axes.stairs(counts / len(s.values), edges, fill=True, color=color, alpha=0.55 if s.role == "before" else 0.75,
                    label=charts.short(s.label, 40))
    if threshold is not None:
        axes.axvline(threshold, color=charts.THRESHOLD, linestyle="--", linewidth=1.4, label=f"threshold {threshold:g}")
    axes.set_title(charts.short(series[0].column, 60))
    axes.set_ylabel("share of rows")
    if xlabel:
        axes.set_xlabel(xlabel)
    axes.legend(fontsize=8)


def draw_grid(figure: Any, groups: list[list[Series]], xlabel: str, clip: bool) -> None:
    columns = 1 if len(groups) == 1 else 2
    rows = (len(groups) + columns - 1) // columns
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for ax, group in zip(axes, groups, strict=False):
        draw_histograms(ax, group, clip=clip, xlabel=xlabel)
    for ax in axes[len(groups):]:
        ax.set_visible(False)


def log_edges(low: float, high: float) -> np.ndarray:
    """Strictly increasing log-spaced edges around ``[low, high]``, also when every image has the
    same size (geomspace of two equal ends can come back non-monotonic by rounding)."""
    low = max(low, 1.0)
    high = max(high, low * 2.0)
    return np.geomspace(low / 1.05, high * 1.05, BINS + 1)


def draw_sizes(figure: Any, width: np.ndarray, height: np.ndarray) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    sides, ratios = figure.subplots(1, 2)
    both = np.concatenate([width, height])
    # web images run from icons to posters: pixel counts are binned on a log scale
    edges = log_edges(float(both.min()), float(both.max()))
    for values, color, label in ((width, charts.ACCENT, "width"), (height, charts.AMBER, "height")):
        sides.stairs(np.histogram(values, bins=edges)[0], edges, fill=True, color=color, alpha=0.6, label=label)
    sides.set_xscale("log")
    sides.xaxis.set_major_locator(LogLocator(base=2))
    sides.xaxis.set_minor_locator(NullLocator())
    sides.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # no mathtext: slow
    sides.set_title("width and height")
    sides.set_xlabel("pixels")
    sides.legend(fontsize=8)
    aspect = np.clip(width / height, 1 / 8, 8)
    ratio_edges = np.geomspace(1 / 8, 8, BINS + 1)
    ratios.stairs(np.histogram(aspect, bins=ratio_edges)[0], ratio_edges, fill=True, color=charts.ACCENT, alpha=0.8)
    ratios.set_xscale("log", base=2)
    ticks = [1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8]
    ratios.set_xticks(ticks, ["1:8", "1:4", "1:2", "1:1", "2:1", "4:1", "8:1"])
    ratios.minorticks_off()
    ratios.set_title("aspect ratio (width : height)")
    ratios.axvline(1, color=charts.MUTED, linewidth=1)


def draw_counts(figure: Any, labels: list[str], counts: list[int]) -> None:
    from matplotlib.ticker import FuncFormatter

    axes = figure.subplots()
    positions = list(range(len(labels)))
    axes.barh(positions, counts, color=[charts.CATEGORICAL[i % len(charts.CATEGORICAL)] for i in positions])
    axes.set_yticks(positions, [charts.short(label) for label in labels])
    axes.invert_yaxis()
    axes.xaxis.set_major_formatter(FuncFormatter(charts.thousands))
    axes.grid(axis="y", visible=False)
