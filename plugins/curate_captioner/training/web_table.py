"""The web fine-tune's stage 2 table: the train-split rows of several generated worlds, with each
alt-text as the pipeline hands it to ``realign`` (``normalize_text``, max_length 300, as in
``specs/eval_heldout*.yaml``) and the world's realigned caption (the faithful description, the
entity spelt as the ground truth spells it when the styled alt-text still names it).

    python plugins/curate_captioner/training/web_table.py OUT.parquet WORLD [WORLD ...]

Then ``curate captioner train --stage 2 --table OUT.parquet --init ...`` (train_world.sh).
"""

from __future__ import annotations

import sys

import polars as pl
from curate_basics.api import NormalizeParams, normalize_one
from curate_captioner.data import world_table


def web_table(worlds: list[str], max_length: int = 300) -> pl.DataFrame:
    params = NormalizeParams(max_length=max_length)
    frames = []
    for world in worlds:
        table = world_table(world, 2)
        alt = [normalize_one(a, params) or "" for a in table["alt_text"].to_list()]
        frames.append(table.with_columns(pl.Series("alt_text", alt)))
        print(f"{world}: {table.height} train rows", file=sys.stderr)
    return pl.concat(frames)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit("usage: web_table.py OUT.parquet WORLD [WORLD ...]")
    table = web_table(sys.argv[2:])
    table.write_parquet(sys.argv[1])
    print(f"{sys.argv[1]}: {table.height} rows", file=sys.stderr)
