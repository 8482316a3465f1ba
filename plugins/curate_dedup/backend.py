"""faiss, imported on first use: indexes, k-means and nearest-centroid assignment, on CPU or GPU.

Vectors arrive as float16 (as the embedding store keeps them) and are converted to float32 one
batch at a time, so no float32 copy of the whole table is made outside the index itself.
GPU indexes are used when the GPU build of faiss sees a device (``device: auto``); results
match the CPU path within float tolerance (IVF cells trained on GPU may differ slightly).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np

from curate.errors import CurateError, MissingDependencyError

Device = Literal["auto", "cpu", "gpu"]
BATCH = 16_384  # query rows per faiss call: bounds the float32 copies and the result arrays


def faiss_module() -> Any:
    try:
        import faiss
    except ImportError:
        raise MissingDependencyError("semantic dedup", ["faiss"], "dedup") from None
    return faiss


def gpu_count() -> int:
    faiss = faiss_module()
    return int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0


def resolve_device(device: Device) -> str:
    if device == "cpu":
        return "cpu"
    gpus = gpu_count()
    if device == "gpu" and gpus == 0:
        raise CurateError("device 'gpu' asked for, but faiss sees no GPU",
                          "install faiss-gpu (conda: faiss-gpu) on a machine with CUDA, or use device: auto")
    return "gpu" if gpus else "cpu"


@contextmanager
def threads(count: int | None) -> Iterator[None]:
    """Limit faiss's OpenMP threads for the duration (shared machines)."""
    faiss = faiss_module()
    if not count:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def as_float32(block: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(block, dtype=np.float32)


_GPU_RESOURCES: list[Any] = []


def to_gpu(index: Any) -> Any:
    """``index`` on GPU 0. One StandardGpuResources per process, kept alive here: it owns the
    device's scratch memory and must outlive every index that uses it."""
    faiss = faiss_module()
    if not _GPU_RESOURCES:
        _GPU_RESOURCES.append(faiss.StandardGpuResources())
    return faiss.index_cpu_to_gpu(_GPU_RESOURCES[0], 0, index)


def build_index(vectors: np.ndarray, kind: Literal["flat", "ivf"], nlist: int, nprobe: int,
                seed: int, device: str) -> Any:
    """An inner-product index over ``vectors`` (L2-normalized, so inner product = cosine)."""
    faiss = faiss_module()
    n, dim = vectors.shape
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    else:
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.cp.niter = 10
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(n, size=min(n, nlist * 64), replace=False))
        index.cp.max_points_per_centroid = max(256, -(-sample.size // nlist))  # we sampled already
        index.train(as_float32(vectors[sample]))
        index.nprobe = min(nprobe, nlist)
    if device == "gpu":
        index = to_gpu(index)
        if kind == "ivf":
            faiss.GpuParameterSpace().set_index_parameter(index, "nprobe", min(nprobe, nlist))
    for start in range(0, n, BATCH):
        index.add(as_float32(vectors[start:start + BATCH]))
    return index


def knn_pairs(vectors: np.ndarray, threshold: float, neighbors: int, kind: Literal["flat", "ivf"],
              nlist: int, nprobe: int, seed: int, device: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i, j, cosine) with i < j, j among i's ``neighbors`` nearest, cosine > threshold.
    Groups larger than ``neighbors`` stay connected through their members' own neighbors."""
    n = vectors.shape[0]
    index = build_index(vectors, kind, nlist, nprobe, seed, device)
    k = min(neighbors + 1, n)  # +1: a point finds itself
    firsts, seconds, sims = [], [], []
    for start in range(0, n, BATCH):
        similarity, found = index.search(as_float32(vectors[start:start + BATCH]), k)
        rows = np.arange(start, start + found.shape[0])[:, None]
        hit = (similarity > threshold) & (found >= 0) & (found != rows)
        i = np.broadcast_to(rows, found.shape)[hit]
        j = found[hit]
        firsts.append(np.minimum(i, j))
        seconds.append(np.maximum(i, j))
        sims.append(similarity[hit])
    return _concat(firsts, np.int64), _concat(seconds, np.int64), _concat(sims, np.float32)


def kmeans(vectors: np.ndarray, k: int, niter: int, points_per_centroid: int, seed: int,
           device: str) -> np.ndarray:
    """Spherical k-means centroids (unit vectors) from a seeded sample of ``vectors``."""
    faiss = faiss_module()
    n, dim = vectors.shape
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, k * points_per_centroid), replace=False))
    clustering = faiss.Kmeans(dim, k, niter=niter, seed=seed, spherical=True,
                              max_points_per_centroid=max(points_per_centroid, -(-sample.size // k)),
                              min_points_per_centroid=1, gpu=device == "gpu")
    clustering.train(as_float32(vectors[sample]))
    return np.asarray(clustering.centroids, dtype=np.float32)


def assign(vectors: np.ndarray, centroids: np.ndarray, device: str, nearest: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The ``nearest`` closest centroids of every vector, and the cosine similarities to them,
    as (rows, nearest) arrays, closest first."""
    faiss = faiss_module()
    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(as_float32(centroids))
    if device == "gpu":
        index = to_gpu(index)
    nearest = min(nearest, centroids.shape[0])
    labels, sims = [], []
    for start in range(0, vectors.shape[0], BATCH):
        similarity, found = index.search(as_float32(vectors[start:start + BATCH]), nearest)
        labels.append(found)
        sims.append(similarity)
    if not labels:
        return np.zeros((0, nearest), np.int64), np.zeros((0, nearest), np.float32)
    return np.concatenate(labels).astype(np.int64), np.concatenate(sims).astype(np.float32)


def _concat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)
