"""Finding near-duplicate pairs in L2-normalized embeddings: two algorithms, one output.

``knn``: every vector asks a faiss index (flat, or IVF above a size) for its nearest neighbors;
neighbors more similar than the threshold are pairs. Exact with the flat index.

``semdedup`` (Abbas et al., 2023): spherical k-means, then all pairs *within* each cluster,
computed in row blocks so memory is bounded by the largest cluster times a block, never by the
table. Pairs that a cluster boundary separates are missed; that is the price of its speed.

Both return pairs (i, j, cosine) with i < j and cosine > threshold; grouping is done elsewhere.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from curate_dedup import backend

BLOCK_ELEMENTS = 1 << 24  # similarity values computed at once within a cluster (64 MB of float32)
MIN_CELL = 39  # rows per k-means cluster or IVF cell below which faiss (rightly) warns


@dataclass
class Pairs:
    first: np.ndarray
    second: np.ndarray
    similarity: np.ndarray
    centroid_similarity: np.ndarray | None = None  # semdedup: cosine of each row to its centroid
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class KnnOptions:
    neighbors: int = 16
    index: Literal["auto", "flat", "ivf"] = "auto"
    ivf_above: int = 50_000
    nlist: int | None = None
    nprobe: int = 8


@dataclass(frozen=True)
class SemDedupOptions:
    clusters: int | None = None
    niter: int = 20
    points_per_centroid: int = 64
    spill: float = 0.0


def cluster_count(n: int, requested: int | None) -> int:
    """About sqrt(n) clusters of about sqrt(n) rows unless asked otherwise (k-means and the
    in-cluster pairs then cost about the same, n·sqrt(n)·dim each), and never so many that
    clusters average under MIN_CELL rows: tiny clusters cut duplicate groups apart."""
    return max(1, min(requested or round(math.sqrt(n)), n // MIN_CELL))


def knn(vectors: np.ndarray, threshold: float, options: KnnOptions, seed: int, device: str) -> Pairs:
    n = vectors.shape[0]
    kind = options.index
    if kind == "auto":
        kind = "ivf" if n > options.ivf_above else "flat"
    # faiss wants at least ~39 training points per IVF cell.
    nlist = cluster_count(n, options.nlist)
    if nlist == 1:
        kind = "flat"  # one cell is a flat index
    started = time.perf_counter()
    first, second, sims = backend.knn_pairs(vectors, threshold, options.neighbors, kind, nlist,
                                            options.nprobe, seed, device)
    facts: dict[str, Any] = {"index": kind, "neighbors": options.neighbors, "search_seconds": _since(started)}
    if kind == "ivf":
        facts.update(nlist=nlist, nprobe=min(options.nprobe, nlist))
    return Pairs(first, second, sims, facts=facts)


def semdedup(vectors: np.ndarray, threshold: float, options: SemDedupOptions, seed: int, device: str,
             engine: Literal["faiss", "torch"] = "faiss") -> Pairs:
    """``engine``: faiss (its k-means and index, numpy products within clusters) or torch (all
    three as torch products on ``device``; see :mod:`curate_dedup.torch_backend`)."""
    n = vectors.shape[0]
    k = cluster_count(n, options.clusters)
    started = time.perf_counter()
    data: Any = vectors
    if engine == "torch":
        from curate_dedup import torch_backend

        data = torch_backend.Resident(vectors, device)
    uploaded = _since(started)
    if k == 1:
        mean = vectors.astype(np.float32).sum(axis=0, keepdims=True)
        centroids = mean / max(float(np.linalg.norm(mean)), 1e-12)
    elif engine == "torch":
        centroids = torch_backend.kmeans(data, k, options.niter, options.points_per_centroid, seed)
    else:
        centroids = backend.kmeans(vectors, k, options.niter, options.points_per_centroid, seed, device)
    trained = _since(started)
    nearest = 2 if options.spill > 0 else 1
    if engine == "torch":
        cluster, centroid_sim = torch_backend.assign(data, centroids, nearest)
    else:
        cluster, centroid_sim = backend.assign(vectors, centroids, device, nearest=nearest)
    assigned = round(_since(started) - trained, 3)
    rows = np.arange(n)
    # A row close to the boundary with its second cluster is compared in both: near-duplicates
    # that k-means put on either side of a boundary are still found.
    spilled = np.zeros(n, dtype=bool)
    second = cluster[:, 0]
    if cluster.shape[1] > 1:
        spilled = centroid_sim[:, 0] - centroid_sim[:, 1] < options.spill
        second = cluster[:, 1]
    member_cluster = np.concatenate([cluster[:, 0], second[spilled]])
    member_row = np.concatenate([rows, rows[spilled]])
    order = np.lexsort((member_row, member_cluster))  # by cluster, input order inside each
    member_row = member_row[order]
    bounds = np.searchsorted(member_cluster[order], np.arange(k + 1))
    if engine == "torch":
        first, second, similarity = torch_backend.cluster_pairs(data, member_row, bounds, threshold)
    else:
        first, second, similarity = _cluster_pairs(vectors, member_row, bounds, threshold)
    if spilled.any() and first.size:  # a pair of two spilled rows is found in both their clusters
        _, unique = np.unique(np.stack([first, second], axis=1), axis=0, return_index=True)
        unique.sort()
        first, second, similarity = first[unique], second[unique], similarity[unique]
    sizes = np.diff(bounds)
    facts = {
        "clusters": k,
        "spilled_rows": int(spilled.sum()),
        "largest_cluster": int(sizes.max()) if sizes.size else 0,
        "kmeans_seconds": round(trained - uploaded, 3),
        "assign_seconds": assigned,
        "pairs_seconds": round(_since(started) - trained - assigned, 3),
    }
    if engine == "torch":
        facts.update(engine="torch", upload_seconds=uploaded)
    return Pairs(first, second, similarity, centroid_similarity=centroid_sim[:, 0], facts=facts)


def _cluster_pairs(vectors: np.ndarray, member_row: np.ndarray, bounds: np.ndarray,
                   threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs above the threshold within each cluster ``member_row[bounds[c]:bounds[c+1]]``."""
    firsts, seconds, sims = [], [], []
    for c in range(bounds.size - 1):
        members = member_row[bounds[c]:bounds[c + 1]]
        if members.size < 2:
            continue
        i, j, s = pairs_within(backend.as_float32(vectors[members]), threshold)
        firsts.append(members[i])
        seconds.append(members[j])
        sims.append(s)
    return _cat(firsts, np.int64), _cat(seconds, np.int64), _cat(sims, np.float32)


def pairs_within(block: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs (i, j), i < j, of rows of ``block`` with cosine > threshold, computed a few rows
    at a time against the rows after them (the upper triangle only)."""
    m = block.shape[0]
    rows = max(1, BLOCK_ELEMENTS // m)
    firsts, seconds, sims = [], [], []
    for start in range(0, m, rows):
        stop = min(m, start + rows)
        similarity = block[start:stop] @ block[start:].T
        local_row = np.arange(stop - start)[:, None]
        hit = (similarity > threshold) & (np.arange(m - start)[None, :] > local_row)
        r, c = np.nonzero(hit)
        firsts.append(r + start)
        seconds.append(c + start)
        sims.append(similarity[r, c])
    return _cat(firsts, np.int64), _cat(seconds, np.int64), _cat(sims, np.float32)


def brute_force(vectors: np.ndarray, threshold: float) -> Pairs:
    """Every pair above the threshold, exactly (the reference for tests and benchmarks)."""
    i, j, s = pairs_within(backend.as_float32(vectors), threshold)
    return Pairs(i, j, s)


def _cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)
