"""Synthetic embeddings with planted near-duplicate groups, and hypothesis strategies over them,
for tests here and in plugins that read embeddings (needs hypothesis: ``curate[test]``).

Group centers are random unit vectors (nearly orthogonal in 32+ dimensions); members are a
center plus small noise, so members of a group are far more similar to each other than to
anything else: every sensible threshold recovers the groups exactly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from hypothesis import strategies as st

from curate.embeddings import EmbeddingStore


@dataclass
class Planted:
    table: pl.DataFrame  # uid, url, alt_text, clip_score, truth (planted group; singletons have their own)
    vectors: np.ndarray  # (rows, dim) unit float32, in table order

    @property
    def truth(self) -> np.ndarray:
        return self.table["truth"].to_numpy()

    def write_store(self, step_dir: Path, name: str = "image", model: str = "synthetic", shard_rows: int = 97,
                    missing: set[str] | None = None) -> Path:
        """An embedding store as ``clip_score`` would leave it in ``step_dir`` (shuffled shard
        order relative to the table, to catch code that assumes they line up)."""
        store = EmbeddingStore.of_step(step_dir, name)
        store.write_meta(self.vectors.shape[1], model)
        uids = self.table["uid"].to_list()
        keep = [i for i, u in enumerate(uids) if not missing or u not in missing]
        order = np.random.default_rng(len(uids)).permutation(keep) if keep else np.zeros(0, int)
        for shard, start in enumerate(range(0, len(order), shard_rows)):
            rows = order[start:start + shard_rows]
            store.write_shard(shard, [uids[i] for i in rows], self.vectors[rows])
        return step_dir


def planted(sizes: list[int], dim: int = 32, noise: float = 0.003, seed: int = 0, spread: float = 1.0) -> Planted:
    """Groups of the given sizes (1 = a singleton), rows shuffled. ``spread`` < 1 pulls centers
    toward a common direction, for "random but clustered" data where groups are not orthogonal."""
    rng = np.random.default_rng(seed)
    common = _unit(rng.normal(size=dim))
    centers = _unit(rng.normal(size=(len(sizes), dim)) * spread + common * (1.0 - spread) * np.sqrt(dim))
    truth = np.repeat(np.arange(len(sizes)), sizes)
    vectors = _unit(centers[truth] + rng.normal(scale=noise, size=(truth.size, dim)))
    order = rng.permutation(truth.size)
    truth, vectors = truth[order], vectors[order]
    n = truth.size
    table = pl.DataFrame({
        "uid": [_uid(i) for i in range(n)],
        "url": [f"https://example.com/img/{i}.jpg" for i in range(n)],
        "alt_text": [f"picture {i}" for i in range(n)],
        "clip_score": rng.random(n).round(3),
        "truth": truth,
    })
    return Planted(table, vectors.astype(np.float32))


@st.composite
def planted_groups(draw: Any, max_groups: int = 40, max_size: int = 5, dims: tuple[int, ...] = (32, 64)) -> Planted:
    sizes = draw(st.lists(st.integers(1, max_size), min_size=1, max_size=max_groups))
    return planted(sizes, dim=draw(st.sampled_from(dims)), seed=draw(st.integers(0, 2**16)))


def _uid(index: int) -> str:
    return hashlib.md5(f"planted:{index}".encode()).hexdigest()[:16]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)
