"""dedup_semantic inside a real run: an upstream step stores embeddings, the engine hands the
dedup its store directory, the manifest records the summary and the dropped rows are kept."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import polars as pl
import pytest
from curate_dedup.testing import planted

from curate import Step, hookimpl
from curate.embeddings import EmbeddingStore
from curate.schema import Schema
from curate.testing import run_spec
from curate.testing.runner import read_step_output

pytest.importorskip("faiss")


class StoreVectors(Step):
    """Stands in for clip_score: stores the ``vector`` column as image embeddings."""

    name = "store_vectors"
    reads: ClassVar[Schema] = {"vector": pl.List(pl.Float32)}

    def process_shard(self, table, ctx):
        store = EmbeddingStore(ctx.artifacts, "image")
        vectors = np.array(table["vector"].to_list(), dtype=np.float32).reshape(table.height, -1)
        store.write_meta(vectors.shape[1] if table.height else 32, "synthetic")
        store.write_shard(ctx.shard, table["uid"], vectors)
        return table


class Plugin:
    @hookimpl
    def curate_register_steps(self):
        return [StoreVectors]


def test_a_run_dedups_on_the_upstream_embeddings(dedup_pm, register_plugin, workdir):
    register_plugin(Plugin(), "store-vectors")
    data = planted([3, 1, 2, 1, 4] * 4, seed=11)
    table = data.table.drop("uid").with_columns(pl.Series("vector", data.vectors.tolist(), dtype=pl.List(pl.Float32)))
    spec = {
        "name": "dedup",
        "source": {"format": "parquet", "path": "data.parquet"},
        "steps": [
            {"step": "store_vectors", "name": "clip"},
            {"step": "sql", "params": {"query": "SELECT * FROM input"}},  # embeddings come from 'clip', two up
            {"step": "dedup_semantic", "params": {"algorithm": "semdedup", "keep": "max", "order_by": "clip_score"}},
        ],
        "run": {"shard_size": 16, "report": False},
    }
    manifest = run_spec(spec, workdir, tables={"data.parquet": table}, pm=dedup_pm)
    record = manifest["steps"][-1]
    assert record["summary"]["embeddings_from"] == "clip"
    assert record["summary"]["groups"] == 12 and record["summary"]["dropped"] == 24
    assert record["dropped"] == {"dedup_semantic": 24}
    kept = read_step_output(manifest, "dedup_semantic")
    assert kept.height == table.height - 24
    best = table.group_by("truth").agg(pl.col("clip_score").max())
    assert sorted(kept.select("truth", "clip_score").rows()) == sorted(best.rows())
