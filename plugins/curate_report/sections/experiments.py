"""Experiments: the results of training or evaluating on variants of the curated data.

Read from ``RUN_DIR/experiment/summary.json`` (a multi-seed experiment: means with ``*_std``),
else ``RUN_DIR/experiment/results.json``, else the manifest's ``experiment`` key. Accepted
shapes: a list of rows, ``{"results": [...]}`` (also ``variants`` or ``rows``), or
``{variant: {metric: value}}``. The plot shows ``accuracy`` per variant (else the first metric
with "acc" in its name, else the first numeric one), with error bars from ``<metric>_std``,
``<metric>_stderr`` or ``<metric>_ci`` when present.
"""

from __future__ import annotations

import json
import os
from typing import Any

from curate_report import charts
from curate_report.html import Html, esc, table
from curate_report.rundata import RunData

ORDER = 50
LIST_KEYS = ("results", "variants", "rows")
NAME_KEYS = ("variant", "name", "label", "spec")
ERROR_SUFFIXES = ("_std", "_stderr", "_ci")


def build(data: RunData) -> dict[str, Any] | None:
    raw = load(data)
    rows = normalize(raw)
    if not rows:
        return None
    name_key = next((k for k in NAME_KEYS if any(k in r for r in rows)), None)
    metric = choose_metric(rows)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    numeric = [i for i, c in enumerate(columns) if any(isinstance(r.get(c), int | float) for r in rows)]
    body = [[cell(row.get(c)) for c in columns] for row in rows]
    parts = []
    if metric is not None:
        names = [str(row.get(name_key, i)) if name_key else str(i) for i, row in enumerate(rows)]
        values = [row.get(metric) for row in rows]
        errors_key = next((metric + s for s in ERROR_SUFFIXES if any(metric + s in r for r in rows)), None)
        errors = [row.get(errors_key) if isinstance(row.get(errors_key), int | float) else 0 for row in rows] \
            if errors_key else None
        parts.append(charts.chart(lambda figure: draw(figure, names, values, errors, metric),
                                  height=0.9 + 0.4 * len(rows), width=6.5, alt=f"{metric} per variant"))
    parts.append(table(columns, body, numeric=numeric))
    facts = {k: v for k, v in raw.items() if isinstance(v, str | int | float) and k not in LIST_KEYS} \
        if isinstance(raw, dict) and any(k in raw for k in LIST_KEYS) else {}
    if facts:
        parts.append(Html("<p class='caption'>" + ", ".join(f"{esc(k)}: {esc(cell(v))}" for k, v in facts.items())
                          + "</p>"))
    return {"title": "Experiments", "html": Html("".join(parts)), "order": ORDER}


def load(data: RunData) -> Any:
    from curate.runfiles import confined, read_json, real_folders

    for name in ("summary.json", "results.json"):
        path = data.run_dir / "experiment" / name
        if path.is_file():
            # The run's own file: a link out of a run from elsewhere would show a file of yours
            # as a table (a dict of dicts, such as a config file with its tokens, is one shape).
            real = confined(path, real_folders([data.run_dir]))
            if real is None:
                raise OSError(f"{path} is a link out of the run directory (to {os.path.realpath(path)}); "
                              f"it was not read")
            return read_json(real)
    return data.manifest.get("experiment") or data.manifest.get("experiments")


def normalize(raw: Any) -> list[dict[str, Any]]:
    if isinstance(raw, list):
        return [row for row in raw if isinstance(row, dict)]
    if not isinstance(raw, dict) or not raw:
        return []
    for key in LIST_KEYS:
        if key in raw:
            return normalize(raw[key])
    if all(isinstance(value, dict) for value in raw.values()):
        return [{"variant": name, **value} for name, value in raw.items()]
    return []


def choose_metric(rows: list[dict[str, Any]]) -> str | None:
    numeric = [k for k in dict.fromkeys(k for r in rows for k in r)
               if any(isinstance(r.get(k), int | float) and not isinstance(r.get(k), bool) for r in rows)
               and not k.endswith(ERROR_SUFFIXES)]
    for candidate in (["accuracy"], [k for k in numeric if "acc" in k.lower()], numeric):
        found = [k for k in candidate if k in numeric]
        if found:
            return found[0]
    return None


def cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True)
        return text if len(text) <= 80 else text[:79] + "…"
    return "–" if value is None else str(value)


def draw(figure: Any, names: list[str], values: list[Any], errors: list[Any] | None, metric: str) -> None:
    axes = figure.subplots()
    positions = list(range(len(names)))
    heights = [float(v) if isinstance(v, int | float) else 0.0 for v in values]
    best = max(heights) if heights else 0
    colors = [charts.ACCENT if h == best else charts.MUTED for h in heights]
    axes.barh(positions, heights, color=colors, height=0.6,
              xerr=[float(e) for e in errors] if errors else None, error_kw={"ecolor": "#334155", "capsize": 3})
    for position, height in zip(positions, heights, strict=True):
        axes.annotate(f"{height:.4g}", (height, position), xytext=(4, 0), textcoords="offset points",
                      va="center", fontsize=8, color="#334155")
    axes.set_yticks(positions, [charts.short(n, 32) for n in names])
    axes.invert_yaxis()
    axes.set_xlabel(charts.short(metric, 60))
    axes.set_title(f"{charts.short(metric, 60)} per variant (best in colour)")
    axes.grid(axis="y", visible=False)
    axes.margins(x=0.12)
