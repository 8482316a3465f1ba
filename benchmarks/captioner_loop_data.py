"""The pool and eval tables of the captioner closed loop (specs/experiment_captioner_loop.yaml): a
generated world's train rows as a user-style pool, and its clean eval split as labelled tables.

    curate world generate runs/captioner-loop-world --n 3000 --seed 7717 --realign-fraction 1.0 \\
        --web-style web --noise-rates partial=0.25,wrong_attribute=0.2,unrelated=0.15,boilerplate=0.05,empty=0.05 \\
        --fault-rate 0
    python benchmarks/captioner_loop_data.py runs/captioner-loop-world runs/captioner-loop-data

writes ``OUT/pool.parquet`` (url, alt_text, image = {shard, key}: the world's images read in place;
the train split, ``--rows`` of them), ``OUT/eval_shape.parquet`` and ``OUT/eval_color.parquet``
(path, label: the eval split's labelled object), ``OUT/eval_text.parquet`` (path, text: its visual
description, for retrieval). The world's seed is one no captioner was trained or tuned on; its rows
are not filtered by scene, so some show a scene that a training world also shows (seed 7717: 299 of
the first 1,500 for the shipped captioner, whose worlds are r2 and the web fine-tune's 4101-4104).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def make(world: Path, out: Path, rows: int | None = None) -> dict[str, int]:
    import polars as pl

    out.mkdir(parents=True, exist_ok=True)
    table = pl.read_parquet(world / "world.parquet").filter(pl.col("split") == "train").sort("world_id")
    if rows is not None:
        table = table.head(rows)
    images = str((world / "images").resolve())
    key = pl.col("image_path").str.split("/").list.last().str.replace(r"\.[^.]+$", "")  # the store's key: no extension
    pool = table.select(pl.col("url_path").alias("url"), pl.col("alt_text").fill_null(""),
                        pl.struct(pl.lit(images).alias("shard"), key.alias("key")).alias("image"), "world_id", "noise_type")
    pool.write_parquet(out / "pool.parquet")
    evaluation = pl.read_parquet(world / "eval.parquet")
    path = pl.lit(str(world.resolve()) + "/") + pl.col("image_path")
    for name, column in (("shape", "label_shape"), ("color", "label_color")):
        evaluation.select(path.alias("path"), pl.col(column).alias("label")).write_parquet(out / f"eval_{name}.parquet")
    evaluation.select(path.alias("path"), pl.col("visual_description").alias("text")).write_parquet(out / "eval_text.parquet")
    return {"pool_rows": pool.height, "eval_rows": evaluation.height}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("world", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=None, help="the first ROWS train rows (default: all)")
    args = parser.parse_args()
    print(json.dumps(make(args.world, args.out, args.rows)))


if __name__ == "__main__":
    main()
