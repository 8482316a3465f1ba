"""A small generated world whose images are read straight from its directory (no download)."""

from __future__ import annotations

import polars as pl
import pytest

pytest.importorskip("torch")
pytest.importorskip("open_clip")


def image_table(world_dir, *, limit: int | None = None) -> pl.DataFrame:
    """uid, alt_text, the world's ground truth and an ``image`` reference into ``images/``
    (curate.images reads a directory of ``<key>.<ext>`` files like a download shard)."""
    table = pl.read_parquet(world_dir / "world.parquet")
    if limit is not None:
        table = table.head(limit)
    key = pl.col("world_id").cast(pl.Utf8).str.zfill(6)
    return table.select(
        key.alias("uid"),
        pl.col("alt_text"),
        pl.col("noise_type").alias("gt_noise_type"),
        pl.col("description").alias("gt_description"),
        pl.struct(pl.lit(str(world_dir / "images")).alias("shard"), key.alias("key")).alias("image"),
    )


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    from curate_world.generate import generate_world

    return generate_world(tmp_path_factory.mktemp("clip_world") / "world", n=48, seed=5, fault_rate=0.0).dir
