"""World → WebDataset shards (jpg + txt) for ``open_clip_train --dataset-type webdataset``.

Every image is paired with a *true* text: its faithful or partial alt-text when it has one (so
the model sees web phrasing and entity names), otherwise its ground-truth description. A CLIP
trained this way scores faithful text high and wrong, unrelated or boilerplate text low, which is
exactly what a filter needs.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import polars as pl

TRUE_NOISE = ("faithful", "partial")


def training_pairs(world_dir: Path, seed: int) -> pl.DataFrame:
    table = pl.read_parquet(world_dir / "world.parquet")
    rng = np.random.default_rng(seed)
    use_alt = (table["noise_type"].is_in(TRUE_NOISE).to_numpy()) & (rng.random(table.height) < 0.5)
    texts = np.where(use_alt, table["alt_text"].fill_null("").to_numpy(), table["description"].to_numpy())
    return table.select("world_id", "image_path").with_columns(pl.Series("text", texts))


def write_shards(world_dir: Path, out_dir: Path, seed: int = 0, per_shard: int = 2000) -> tuple[str, int]:
    """Write shards; return (the brace pattern open_clip_train takes, number of samples)."""
    pairs = training_pairs(world_dir, seed)
    order = np.random.default_rng(seed + 1).permutation(pairs.height)
    pairs = pairs[order]
    out_dir.mkdir(parents=True, exist_ok=True)
    shards = 0
    for start in range(0, pairs.height, per_shard):
        chunk = pairs.slice(start, per_shard)
        with tarfile.open(out_dir / f"{shards:05d}.tar", "w") as tar:
            for row in chunk.iter_rows(named=True):
                key = f"{row['world_id']:08d}"
                image = (world_dir / row["image_path"]).read_bytes()
                for suffix, payload in (("jpg", image), ("txt", row["text"].encode()),
                                        ("json", json.dumps({"world_id": row["world_id"]}).encode())):
                    info = tarfile.TarInfo(f"{key}.{suffix}")
                    info.size = len(payload)
                    info.mtime = 0
                    tar.addfile(info, io.BytesIO(payload))
        shards += 1
    pattern = str(out_dir / f"{{00000..{shards - 1:05d}}}.tar")
    return pattern, pairs.height
