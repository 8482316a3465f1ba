"""Score a captioner on every row of a selection world (``scenes: heldout``, a seed no report
uses), alt-texts normalized as the pipeline does; entity retention also per web style. Used to
choose the web fine-tune's checkpoint and copy bias (its val split alone is too small: ~5 %).

    python plugins/curate_captioner/training/web_select.py WORLD MODEL [ROWS] [COPY_BIAS]

Prints one JSON line: attribute accuracy, entity retention, entity invented (Wilson 95 %).
"""

from __future__ import annotations

import json
import sys

import polars as pl
import torch
from curate_basics.api import NormalizeParams, normalize_one
from curate_captioner.api import Captioner, score_texts
from curate_captioner.data import open_images
from curate_captioner.evaluate import caption_rows
from curate_world.api import STYLES, Scene, proportion


def select(world: str, model: str, rows: int | None = None, copy_bias: float | None = None) -> dict:
    table = pl.read_parquet(f"{world}/world.parquet").sort("world_id")
    if rows:
        table = table.head(rows)
    params = NormalizeParams(max_length=300)
    alts = [normalize_one(a, params) or "" for a in table["alt_text"].to_list()]
    scenes = [Scene.from_objects_json(o, b, t) for o, b, t in table.select("objects", "background", "texture").iter_rows()]
    images = open_images([f"{world}/{p}" for p in table["image_path"].to_list()])
    named = table["alt_mentions_entity"].to_list()
    styles = table["styles"].to_list() if "styles" in table.columns else [[] for _ in alts]
    captioner = Captioner.load(model)
    bias = captioner.config.copy_bias if copy_bias is None else copy_bias
    with torch.inference_mode():
        captions = caption_rows(captioner, images, alts, table["world_id"].to_list(), batch_size=64, seed=0, copy_bias=bias)
    s = score_texts(captions, scenes, named, alts)

    def share(key: str, rows_key: str | None) -> dict:
        count = s[rows_key] if rows_key else len(captions)
        return proportion(round((s[key] or 0) * count), count)

    by_style = {}
    for style in (*STYLES, None):
        pick = [i for i in range(len(captions)) if named[i] and (style in styles[i] if style else not styles[i])]
        if pick:
            kept = score_texts([captions[i] for i in pick], [scenes[i] for i in pick], [True] * len(pick),
                               [alts[i] for i in pick])["entity_retention"]
            by_style[style or "unstyled"] = [round(kept, 3), len(pick)]
    return {"world": world, "model": model, "copy_bias": bias, "rows": len(captions),
            "attribute_accuracy": share("attribute_accuracy", None),
            "entity_retention": share("entity_retention", "entity_retention_rows"),
            "entity_invented": share("entity_invention", "entity_invention_rows"),
            "retention_by_style": by_style}


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit("usage: web_select.py WORLD MODEL [ROWS] [COPY_BIAS]")
    torch.set_num_threads(1)
    print(json.dumps(select(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else None,
                            float(sys.argv[4]) if len(sys.argv) > 4 else None)))
