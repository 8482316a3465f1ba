"""Synthetic CLIP-like embeddings for the dedup benchmark: random but clustered, with planted
near-duplicates, written as a table plus an embedding store (as ``clip_score`` leaves them).

Rows belong to one of ``topics`` random directions (cosine to their topic about 0.7, to each
other about 0.5: like a web corpus, where most images have many loosely similar neighbors).
A tenth of the rows are near-copies (cosine about 0.995) of another row: the planted
duplicates, each recorded with its original in ``truth`` (equal truth = one planted group).

Generated once per size and cached under benchmarks/.data/dedup/ (about 1 GB per million rows).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import polars as pl

from curate.embeddings import EmbeddingStore

DIM = 512
DUP_FRACTION = 0.1
SHARD_ROWS = 100_000
FORMAT = 1  # bump when the data would change


def uid(index: int) -> str:
    return hashlib.md5(f"bench:{index}".encode()).hexdigest()[:16]


def dataset(rows: int, directory: Path, seed: int = 0, topics: int | None = None) -> Path:
    """``directory`` with ``table.parquet`` (uid, truth, clip_score) and a step-like store dir
    ``clip/`` holding the image embeddings. Reused when already complete."""
    done = directory / "done.json"
    facts = {"rows": rows, "seed": seed, "dim": DIM, "format": FORMAT, "dup_fraction": DUP_FRACTION}
    if done.exists() and json.loads(done.read_text()) == facts:
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    topics = topics or max(1, rows // 500)
    centers = _unit(rng.normal(size=(topics, DIM)).astype(np.float32))
    copies = int(rows * DUP_FRACTION)
    originals = rows - copies
    vectors = np.empty((rows, DIM), dtype=np.float16)
    for start in range(0, originals, SHARD_ROWS):
        stop = min(originals, start + SHARD_ROWS)
        topic = rng.integers(topics, size=stop - start)
        noise = rng.normal(scale=1.0 / np.sqrt(DIM), size=(stop - start, DIM)).astype(np.float32)
        vectors[start:stop] = _unit(centers[topic] + noise)
    source = rng.integers(originals, size=copies)
    for start in range(0, copies, SHARD_ROWS):
        stop = min(copies, start + SHARD_ROWS)
        noise = rng.normal(scale=0.1 / np.sqrt(DIM), size=(stop - start, DIM)).astype(np.float32)
        vectors[originals + start:originals + stop] = _unit(vectors[source[start:stop]].astype(np.float32) + noise)
    truth = np.concatenate([np.arange(originals), source])
    order = rng.permutation(rows)
    uids = [uid(i) for i in range(rows)]
    pl.DataFrame({
        "uid": uids,
        "truth": truth[order],
        "clip_score": rng.random(rows).astype(np.float32),
    }).write_parquet(directory / "table.parquet")
    store = EmbeddingStore.of_step(directory / "clip", "image")
    store.write_meta(DIM, "synthetic-clustered")
    for shard, start in enumerate(range(0, rows, SHARD_ROWS)):
        rows_here = order[start:start + SHARD_ROWS]
        store.write_shard(shard, uids[start:start + SHARD_ROWS], vectors[rows_here])
    done.write_text(json.dumps(facts))
    return directory


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)
