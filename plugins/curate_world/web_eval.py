"""Re-measure the world CLIP and the realignment captioner on a web-styled world, overall and per
web style.

    python -m curate_world.web_eval WORLD_DIR [--checkpoint PATH] [--captioner [--split val]] [--out result.json]

WORLD_DIR is a world made by ``curate world generate … --web-style web`` (README, "Web-style
evaluation worlds"). Positives and negatives are by ``noise_type`` (faithful, partial against
wrong_attribute, unrelated, boilerplate, empty), which styling leaves alone; each style's AUC
compares the positives and negatives that carry that style. Needs the clip extra (curate_clip).
``--captioner`` adds the captioner's metrics (``curate_captioner.evaluate.score_texts``: attribute
accuracy, entity retention…) of its realigned captions on the split's rows, per style.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from curate_world.webstyle import STYLES


def clip_auc_by_style(world_dir: Path, checkpoint: str | None = None) -> dict[str, Any]:
    import polars as pl
    from curate_clip.api import NEGATIVE, POSITIVE, auc, score_world

    table = pl.read_parquet(world_dir / "world.parquet")
    if "styles" not in table.columns:
        table = table.with_columns(pl.lit([], dtype=pl.List(pl.String)).alias("styles"))
    scored = score_world(world_dir, checkpoint).join(table.select("world_id", "styles"), on="world_id")

    def measure(frame: pl.DataFrame) -> dict[str, Any]:
        positive = frame.filter(pl.col("noise_type").is_in(POSITIVE))["clip_score"].to_numpy()
        negative = frame.filter(pl.col("noise_type").is_in(NEGATIVE))["clip_score"].to_numpy()
        return {"auc": round(auc(positive, negative), 4), "positives": len(positive), "negatives": len(negative)}

    return {
        "world": str(world_dir),
        "all": measure(scored),
        "unstyled": measure(scored.filter(pl.col("styles").list.len() == 0)),
        "styled": measure(scored.filter(pl.col("styles").list.len() > 0)),
        "by_style": {s: measure(scored.filter(pl.col("styles").list.contains(s))) for s in STYLES},
    }


def captioner_by_style(world_dir: Path, model: str = "world", split: str = "val", seed: int = 0) -> dict[str, Any]:
    import polars as pl
    import torch
    from curate_captioner.api import Captioner, caption_rows, load_split, score_texts

    world = pl.read_parquet(world_dir / "world.parquet")
    if "styles" not in world.columns:
        world = world.with_columns(pl.lit([], dtype=pl.List(pl.String)).alias("styles"))
    rows, scenes, images = load_split(world_dir, world, split)
    alt = [a or "" for a in rows["alt_text"].to_list()]
    named, styles = rows["alt_mentions_entity"].to_list(), rows["styles"].to_list()
    captioner = Captioner.load(model)
    with torch.inference_mode():
        captions = caption_rows(captioner, images, alt, rows["world_id"].to_list(), batch_size=64, seed=seed,
                                copy_bias=captioner.config.copy_bias)

    def measure(pick: list[int]) -> dict[str, Any] | None:
        if not pick:
            return None
        result = score_texts([captions[i] for i in pick], [scenes[i] for i in pick], [named[i] for i in pick],
                             [alt[i] for i in pick])
        return {"rows": len(pick), **result}

    every = range(len(alt))
    return {
        "split": split,
        "model": captioner.name,
        "all": measure(list(every)),
        "unstyled": measure([i for i in every if not styles[i]]),
        "styled": measure([i for i in every if styles[i]]),
        "by_style": {s: measure([i for i in every if s in styles[i]]) for s in STYLES},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("world_dir", type=Path)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--captioner", action="store_true", help="also the captioner's metrics per style")
    parser.add_argument("--split", default="val", help="world split the captioner is measured on")
    parser.add_argument("--out", default=None, type=Path)
    args = parser.parse_args(argv)
    if not (args.world_dir / "world.parquet").exists():
        parser.error(f"{args.world_dir} holds no world.parquet; make one with: curate world generate {args.world_dir} --web-style web")
    result: dict[str, Any] = {"clip": clip_auc_by_style(args.world_dir, args.checkpoint)}
    if args.captioner:
        result["captioner"] = captioner_by_style(args.world_dir, split=args.split)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
