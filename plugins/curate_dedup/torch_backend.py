"""SemDeDup's three parts in torch (``backend: torch``): k-means, nearest-centroid assignment and
the pairs within each cluster, as matrix products on a CUDA device (or the CPU) — no faiss.

faiss's GPU build links the CUDA runtime and cuBLAS itself (hundreds of MB) and is not on PyPI;
torch already brings both, so a machine with torch and a GPU runs SemDeDup on it. The vectors
go to the device once, as float16 (what the embedding store holds), when they fit in half its
free memory, and stay on the host otherwise (then each cluster's rows are gathered there and
copied up); every product is float32 (TF32 off: a cosine near the threshold must not flip),
computed ``BLOCK_ELEMENTS`` values at a time, so memory is bounded by a block, not the table.

k-means follows faiss's: a seeded sample of ``k × points_per_centroid`` rows, centroids started at
k distinct sample rows, spherical updates, an emptied centroid restarted at a random sample row.
Its clusters are not faiss's, so pairs that a boundary separates can differ; the ``spill`` rows
(compared in their two nearest clusters) make that rare, and the tests check both backends find
the same groups on planted data.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import numpy as np

BLOCK_ELEMENTS = 1 << 26  # similarity values computed at once (256 MB of float32)
UPLOAD_ROWS = 1 << 18  # rows copied to the device per transfer


def torch_device(device: str) -> str:
    """``gpu`` (the step's word) is torch's ``cuda``."""
    return "cuda" if device in ("gpu", "cuda") else device


@contextmanager
def exact_matmul() -> Any:
    """float32 products without TF32 (10-bit mantissas would move cosines by ~1e-3). torch 2.9
    added ``fp32_precision`` and warns about mixing it with the older ``allow_tf32``: the newer
    switch where there is one."""
    import torch

    matmul = torch.backends.cuda.matmul
    name, exact = ("fp32_precision", "ieee") if hasattr(matmul, "fp32_precision") else ("allow_tf32", False)
    before = getattr(matmul, name)
    setattr(matmul, name, exact)
    try:
        yield
    finally:
        setattr(matmul, name, before)


class Resident:
    """The vectors where the products run: on the device when they fit, else on the host."""

    def __init__(self, vectors: np.ndarray, device: str):
        import torch

        self.host, self.device = vectors, torch_device(device)
        self.n, self.dim = vectors.shape
        self.on_device: Any = None
        if self.device == "cuda":
            free, _ = torch.cuda.mem_get_info()
            if self.n * self.dim * 2 < free // 2:
                self.on_device = torch.empty((self.n, self.dim), dtype=torch.float16, device=self.device)
                for start in range(0, self.n, UPLOAD_ROWS):
                    block = np.ascontiguousarray(vectors[start:start + UPLOAD_ROWS], dtype=np.float16)
                    self.on_device[start:start + block.shape[0]].copy_(torch.from_numpy(block), non_blocking=False)

    def rows(self, index: np.ndarray | slice) -> Any:
        """float32 rows on the device."""
        import torch

        if self.on_device is not None:
            picked = self.on_device[torch.as_tensor(index, device=self.device)] if isinstance(index, np.ndarray) \
                else self.on_device[index]
            return picked.float()
        return torch.from_numpy(np.ascontiguousarray(self.host[index], dtype=np.float32)).to(self.device)


def kmeans(data: Resident, k: int, niter: int, points_per_centroid: int, seed: int) -> np.ndarray:
    """Spherical k-means centroids (unit float32 rows) from a seeded sample."""
    import torch

    rng = np.random.default_rng(seed)
    sample_rows = np.sort(rng.choice(data.n, size=min(data.n, k * points_per_centroid), replace=False))
    sample = data.rows(sample_rows)
    centroids = sample[torch.as_tensor(rng.choice(sample.shape[0], size=k, replace=False), device=data.device)]
    with exact_matmul():
        for _ in range(niter):
            labels = _nearest(sample, centroids, 1)[1][:, 0]
            sums = torch.zeros_like(centroids).index_add_(0, labels, sample)
            counts = torch.bincount(labels, minlength=k)
            empty = torch.nonzero(counts == 0).flatten()
            if empty.numel():
                sums[empty] = sample[torch.as_tensor(rng.choice(sample.shape[0], size=empty.numel()),
                                                     device=data.device)]
            centroids = torch.nn.functional.normalize(sums, dim=1)
    return centroids.cpu().numpy().astype(np.float32)


def _nearest(block: Any, centroids: Any, nearest: int) -> tuple[Any, Any]:
    """(similarities, indices) of each row's ``nearest`` centroids, closest first, in row blocks."""
    import torch

    rows = max(1, BLOCK_ELEMENTS // centroids.shape[0])
    sims, found = [], []
    for start in range(0, block.shape[0], rows):
        value, index = (block[start:start + rows] @ centroids.T).topk(nearest, dim=1)
        sims.append(value)
        found.append(index)
    return torch.cat(sims), torch.cat(found)


def assign(data: Resident, centroids: np.ndarray, nearest: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The ``nearest`` closest centroids of every vector and the cosines to them, (rows, nearest)."""
    import torch

    nearest = min(nearest, centroids.shape[0])
    on_device = torch.from_numpy(centroids).to(data.device)
    labels, sims = [], []
    with exact_matmul():
        for start in range(0, data.n, UPLOAD_ROWS):
            value, index = _nearest(data.rows(slice(start, start + UPLOAD_ROWS)), on_device, nearest)
            labels.append(index.cpu().numpy())
            sims.append(value.cpu().numpy())
    if not labels:
        return np.zeros((0, nearest), np.int64), np.zeros((0, nearest), np.float32)
    return np.concatenate(labels).astype(np.int64), np.concatenate(sims).astype(np.float32)


def cluster_pairs(data: Resident, member_row: np.ndarray, bounds: np.ndarray,
                  threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i, j, cosine), i < j in cluster order, within each cluster ``member_row[bounds[c]:
    bounds[c+1]]``, cosine > threshold: the upper triangle, a block of rows at a time."""
    import torch

    firsts, seconds, sims = [], [], []
    with exact_matmul():
        for c in range(bounds.size - 1):
            members = member_row[bounds[c]:bounds[c + 1]]
            m = members.size
            if m < 2:
                continue
            block = data.rows(members)
            rows = max(1, BLOCK_ELEMENTS // m)
            for start in range(0, m, rows):
                stop = min(m, start + rows)
                similarity = block[start:stop] @ block[start:].T
                # Column j of this block is row start + j: keep j > local row (the upper triangle).
                upper = torch.arange(m - start, device=data.device)[None, :] > \
                    torch.arange(stop - start, device=data.device)[:, None]
                r, col = torch.nonzero((similarity > threshold) & upper, as_tuple=True)
                if r.numel():
                    firsts.append(members[r.cpu().numpy() + start])
                    seconds.append(members[col.cpu().numpy() + start])
                    sims.append(similarity[r, col].cpu().numpy())
    cat = lambda parts, dtype: np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)  # noqa: E731
    return cat(firsts, np.int64), cat(seconds, np.int64), cat(sims, np.float32)


def available() -> bool:
    """Whether torch is importable (the torch backend's only requirement)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
