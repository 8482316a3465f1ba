"""The web fine-tunes' stage 2 table: the train-split rows of several generated worlds, with each
alt-text as the pipeline hands it to ``realign`` (``normalize_text``, max_length 300, as in
``specs/eval_heldout*.yaml``) and the world's realigned caption (the faithful description, the
entity spelt as the ground truth spells it when the styled alt-text still names it).

    python plugins/curate_captioner/training/web_table.py OUT.parquet WORLD [WORLD ...]
    python plugins/curate_captioner/training/web_table.py --one-object-fraction 0.3 OUT.parquet WORLD ...

``--one-object-fraction F`` keeps a seeded fraction F of the one-object rows (and every row with
two or more objects), then shuffles the table (seed 0): the multi-object fine-tune's table, where
the errors are (TRAINING.md, "Multi-object fine-tune").

Then ``curate captioner train --stage 2 --table OUT.parquet --init ...`` (train_world.sh).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl
from curate_basics.api import NormalizeParams, normalize_one
from curate_captioner.data import world_table

from curate.display import echo


def web_table(worlds: list[str], max_length: int = 300, one_object_fraction: float | None = None) -> pl.DataFrame:
    params = NormalizeParams(max_length=max_length)
    frames, objects = [], []
    for world in worlds:
        table = world_table(world, 2)
        alt = [normalize_one(a, params) or "" for a in table["alt_text"].to_list()]
        frames.append(table.with_columns(pl.Series("alt_text", alt)))
        root = str(Path(world).resolve()) + "/"
        objects.append(pl.read_parquet(Path(world) / "world.parquet")
                       .select((pl.lit(root) + pl.col("image_path")).alias("image"), "n_objects"))
        echo(f"{world}: {table.height} train rows", err=True)
    table = pl.concat(frames)
    if one_object_fraction is None:
        return table
    table = table.join(pl.concat(objects).unique("image"), on="image", how="left", maintain_order="left")
    one = table.filter(pl.col("n_objects") == 1).sample(fraction=one_object_fraction, seed=0)
    multi = table.filter(pl.col("n_objects") > 1)
    return pl.concat([multi, one]).sample(fraction=1.0, shuffle=True, seed=0).drop("n_objects")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--one-object-fraction", type=float, default=None)
    parser.add_argument("out")
    parser.add_argument("worlds", nargs="+")
    args = parser.parse_args()
    table = web_table(args.worlds, one_object_fraction=args.one_object_fraction)
    table.write_parquet(args.out)
    echo(f"{args.out}: {table.height} rows", err=True)
