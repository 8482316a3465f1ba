"""Two captioners on the same pipeline rows: each run's figures (``curate_world.web_eval``) and
their paired differences (B - A) with 95 % bootstrap intervals, per row of the realign step.

    python plugins/curate_captioner/training/pipeline_paired.py RUN_A RUN_B OUT.json

The two runs must realign the same rows (the same spec but for the realign step's ``model``, so
with a shared ``run.cache_dir`` everything before ``realign`` is the same stored step).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl


def per_row(run: Path) -> pl.DataFrame:
    """uid → attribute accuracy, entity retention (rows whose alt-text names the entity), object count,
    web styles."""
    from curate_captioner.compare import row_metrics
    from curate_world.api import Scene, step_table

    table, _ = step_table(run, "realign", ["uid", "caption_realigned", "gt_objects", "gt_background", "gt_texture",
                                           "gt_alt_mentions_entity", "gt_styles"])
    table = table.filter(pl.col("caption_realigned").is_not_null())
    scenes = [Scene.from_objects_json(o, b, t)
              for o, b, t in table.select("gt_objects", "gt_background", "gt_texture").iter_rows()]
    metrics = row_metrics(table["caption_realigned"].to_list(), scenes, table["gt_alt_mentions_entity"].to_list())
    styles = table["gt_styles"] if "gt_styles" in table.columns else [[]] * table.height  # a world without web styles
    return pl.DataFrame({"uid": table["uid"], "objects": [len(s.objects) for s in scenes],
                         "attribute_accuracy": metrics["attribute_accuracy"],
                         "entity_retention": metrics["entity_retention"],
                         "hallucinated_entity": metrics["hallucinated_entity"], "styles": styles},
                        schema_overrides={"entity_retention": pl.Float64, "styles": pl.List(pl.Utf8)})


def paired(a: np.ndarray, b: np.ndarray, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Both means and ``b - a`` paired by row, its CI by ``compare.bootstrap``."""
    from curate_captioner.compare import bootstrap

    gap = bootstrap(b.tolist(), a.tolist(), resamples=resamples, seed=seed)
    assert gap is not None
    return {"rows": len(a), "a": round(float(a.mean()), 4), "b": round(float(b.mean()), 4),
            "b_minus_a": gap["mean"], "ci95": [gap["low"], gap["high"]]}


def compare_runs(run_a: Path, run_b: Path) -> dict[str, Any]:
    from curate_world.api import captioner_from_run

    a, b = per_row(run_a), per_row(run_b)
    if sorted(a["uid"].to_list()) != sorted(b["uid"].to_list()):
        raise SystemExit("error: the two runs realigned different rows; run the same spec with a shared run.cache_dir")
    joined = a.join(b, on="uid", suffix="_b")
    out: dict[str, Any] = {"a": str(run_a), "b": str(run_b),
                           "figures_a": captioner_from_run(run_a), "figures_b": captioner_from_run(run_b), "paired": {}}
    for metric in ("attribute_accuracy", "entity_retention", "hallucinated_entity"):
        rows = joined.filter(pl.col(metric).is_not_null())
        out["paired"][metric] = paired(rows[metric].to_numpy(), rows[metric + "_b"].to_numpy())
    for count in sorted(set(joined["objects"].to_list())):
        rows = joined.filter(pl.col("objects") == count)
        out["paired"][f"attribute_accuracy_{count}_objects"] = paired(rows["attribute_accuracy"].to_numpy(),
                                                                      rows["attribute_accuracy_b"].to_numpy())
    out["paired_by_style"] = by_style(joined)
    return out


def by_style(joined: pl.DataFrame) -> dict[str, Any]:
    """The paired figures over the rows of each web style (a world's ``gt_styles``), and over the
    rows with none ("plain"); a row with two styles counts in both."""
    groups = {"plain": joined.filter(pl.col("styles").fill_null([]).list.len() == 0)}
    for style in sorted(set(joined["styles"].explode().drop_nulls().to_list())):
        groups[style] = joined.filter(pl.col("styles").list.contains(style))
    out: dict[str, Any] = {}
    for name, group in groups.items():
        figures = {}
        for metric in ("attribute_accuracy", "entity_retention"):
            rows = group.filter(pl.col(metric).is_not_null())
            if rows.height:
                figures[metric] = paired(rows[metric].to_numpy(), rows[metric + "_b"].to_numpy())
        if figures:
            out[name] = figures
    return out


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit("usage: pipeline_paired.py RUN_A RUN_B OUT.json")
    result = compare_runs(Path(sys.argv[1]), Path(sys.argv[2]))
    Path(sys.argv[3]).write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps(result["paired"], indent=1))
