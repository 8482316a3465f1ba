"""The caption story: what the web said (alt-text), what realignment wrote, what the mix chose.

Shown when a run has a realigned caption (``caption_realigned``) or a mix's choice (``caption``
with ``caption_source``). The mix's realized ratios come from the data; its targets from the
mix step's summary or params, when it recorded them.
"""

from __future__ import annotations

from typing import Any

from curate.duck import quote
from curate_report import charts
from curate_report.html import Html, badge, clip_text, esc, number, percent, table, thumb
from curate_report.rundata import RunData

ORDER = 40
MAX_CARDS = 12
TARGET_KEYS = ("ratios", "target_ratios", "targets", "weights", "proportions")
TEXTS = (("alt_text", "alt-text"), ("caption_realigned", "realigned"), ("caption", "chosen"))


def build(data: RunData) -> dict[str, Any] | None:
    record = next((r for r in reversed(data.steps) if has_story(data.schema(r))), None)
    if record is None:
        return None
    schema = data.schema(record)
    parts = []
    counts = realized(data, record) if "caption_source" in schema else []
    colors = {source: charts.CATEGORICAL[i % len(charts.CATEGORICAL)] for i, (source, _) in enumerate(counts)}
    if counts:
        parts.append(mix_ratios(data, record, counts, colors))
    texts = text_columns(data.manifest)
    rows = data.sample(record, ["uid", "image", "caption_source", *(c for c, _ in texts)], MAX_CARDS,
                       salt="report-captions")
    cards = [card(data, row, texts, colors, "image" in schema) for row in rows.iter_rows(named=True)]
    parts.append(Html(f"<p class='caption'>{number(len(cards))} sampled rows of step "
                      f"{esc(record['label'])}.</p><div class='cards'>{''.join(cards)}</div>"))
    return {"title": "Caption story", "html": Html("".join(parts)), "order": ORDER}


def text_columns(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """(column, label) to show on a card: the standard ones, plus the column a mix step took its
    synthetic captions from when that is another one (``synthetic: gt_description``)."""
    texts = list(TEXTS)
    for record in manifest.get("steps", []):
        synthetic = (record.get("params") or {}).get("synthetic") if record.get("step") == "mix" else None
        if isinstance(synthetic, str) and synthetic not in dict(texts):
            texts.insert(-1, (synthetic, f"synthetic: {synthetic}"))
    return texts


def has_story(schema: dict[str, Any]) -> bool:
    return "caption_realigned" in schema or {"caption", "caption_source"} <= set(schema)


def realized(data: RunData, record: dict[str, Any]) -> list[tuple[str, int]]:
    relation = data.relation(record)
    if relation is None:
        return []
    counts = data.query(f"SELECT coalesce(CAST({quote('caption_source')} AS VARCHAR), '(none)') AS source, "
                        f"count(*) AS n FROM {relation} GROUP BY 1 ORDER BY n DESC, source")
    return [(str(source), int(n)) for source, n in counts.iter_rows()]


def targets(manifest: dict[str, Any]) -> tuple[str, dict[str, float]] | None:
    """(label, {source: share}) recorded by a mix step, normalized to shares."""
    for record in manifest.get("steps", []):
        if "mix" not in str(record.get("step", "")):
            continue
        for place in (record.get("summary") or {}, record.get("params") or {}):
            for key in TARGET_KEYS:
                value = place.get(key)
                if isinstance(value, dict) and value and all(isinstance(v, int | float) for v in value.values()):
                    total = float(sum(value.values())) or 1.0
                    return record["label"], {str(k): float(v) / total for k, v in value.items()}
    return None


def mix_ratios(data: RunData, record: dict[str, Any], counts: list[tuple[str, int]],
               colors: dict[str, str]) -> Html:
    total = sum(n for _, n in counts)
    target = targets(data.manifest)
    wanted = target[1] if target else {}
    rows_by_source = dict(counts)
    sources = [s for s, _ in counts] + [s for s in wanted if s not in rows_by_source]
    rows = [[s, number(rows_by_source.get(s, 0)), percent(rows_by_source.get(s, 0), total),
             f"{100 * wanted[s]:.1f}%" if s in wanted else "–"] for s in sources]
    listing = table(["caption source", "rows", "realized", "target"], rows, numeric=(1, 2, 3))
    shares = {s: rows_by_source.get(s, 0) / total if total else 0.0 for s in sources}
    picture = charts.chart(lambda figure: draw_ratios(figure, sources, shares, wanted, colors),
                           height=0.9 + 0.35 * len(sources), width=6.5, alt="realized and target caption mix")
    where = f" Targets from step {esc(target[0])}." if target else ""
    return Html(f"<h3>Mix ratios</h3>{picture}{listing}<p class='caption'>Realized over all "
                f"{number(total)} rows of step {esc(record['label'])}.{where}</p>")


def draw_ratios(figure: Any, sources: list[str], shares: dict[str, float], wanted: dict[str, float],
                colors: dict[str, str]) -> None:
    from matplotlib.ticker import PercentFormatter

    axes = figure.subplots()
    positions = list(range(len(sources)))
    height = 0.38 if wanted else 0.6
    axes.barh([p - (height / 2 if wanted else 0) for p in positions], [shares[s] for s in sources], height=height,
              color=[colors.get(s, charts.MUTED) for s in sources])
    if wanted:
        axes.barh([p + height / 2 for p in positions], [wanted.get(s, 0) for s in sources], height=height,
                  color="none", edgecolor="#334155", hatch="///", linewidth=0.8, label="target")
        axes.legend(fontsize=8, loc="lower right")
    axes.set_title("realized share" + (" (solid) against the target (hatched)" if wanted else ""))
    axes.set_yticks(positions, [charts.short(s) for s in sources])
    axes.invert_yaxis()
    axes.xaxis.set_major_formatter(PercentFormatter(1.0))
    axes.grid(axis="y", visible=False)


def card(data: RunData, row: dict[str, Any], texts: list[tuple[str, str]], colors: dict[str, str],
         with_image: bool) -> Html:
    picture = thumb(data.thumbnail(row.get("image")), clip_text(row.get("alt_text"), 80)) if with_image else ""
    lines = []
    for column, name in texts:
        if column not in row:
            continue
        text = clip_text(row[column], 200)
        label = esc(name)
        if column == "caption" and row.get("caption_source") is not None:
            source = str(row["caption_source"])
            label = Html(f"{label} {badge(source, colors.get(source))}")
        shown = esc(text) if text else Html("<span class='muted'>(empty)</span>")
        lines.append(f"<dt>{label}</dt><dd>{shown}</dd>")
    return Html(f"<div class='card'>{picture}<dl>{''.join(lines)}</dl></div>")
