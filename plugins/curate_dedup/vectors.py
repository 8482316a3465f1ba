"""Finding the embeddings an upstream step stored, and lining them up with this table's rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate.embeddings import EmbeddingStore
from curate.errors import CurateError
from curate.step import StepContext


# Which built-in step writes which store, for the hint when none is upstream.
WRITERS = {"image": "a clip_score step (it stores image embeddings)",
           "copy": "a copy_embed step (it stores copy-detection descriptors)"}


def upstream_store(ctx: StepContext, label: str | None, name: str) -> tuple[str, EmbeddingStore]:
    """The store named ``name`` of upstream step ``label``; without a label, of the nearest
    upstream step that has one."""
    upstream: dict[str, str] = ctx.extras.get("upstream", {})
    if label is not None:
        if label not in upstream:
            raise CurateError(f"step '{ctx.label}': embeddings_from '{label}' is not a step upstream of it",
                              f"upstream steps: {', '.join(upstream) or 'none'}")
        store = EmbeddingStore.of_step(Path(upstream[label]), name)
        if not store.exists():
            raise CurateError(f"step '{label}' stored no '{name}' embeddings (looked in {store.dir})",
                              "embeddings_from must name a step that writes them, such as clip_score or copy_embed")
        return label, store
    for candidate in reversed(list(upstream)):
        store = EmbeddingStore.of_step(Path(upstream[candidate]), name)
        if store.exists():
            return candidate, store
    writer = WRITERS.get(name, "the step that writes them")
    raise CurateError(f"step '{ctx.label}' needs '{name}' embeddings, and no upstream step stored them",
                      f"put {writer} before it, or set embeddings_from")


def lookup(store: EmbeddingStore, uids: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """float16 vectors for ``uids`` in order, and which rows have one (a missing or all-zero
    vector, as for an image that failed to load, is no embedding)."""
    vectors = store.lookup(uids, dtype=np.float16)
    present = np.any(vectors != 0, axis=1) if vectors.size else np.zeros(len(uids), dtype=bool)
    return vectors, present


def model_of(store: EmbeddingStore) -> dict[str, Any]:
    """What made the embeddings: enough to embed more images the same way (``copy_embed`` also
    records its model's source, input size and normalization)."""
    meta = store.meta()
    keys = ("kind", "source", "image_size", "mean", "std", "threshold")
    return {"model": meta.get("model"), "dim": meta.get("dim"), **{k: meta[k] for k in keys if k in meta}}
