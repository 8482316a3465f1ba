"""SemDeDup's torch backend (``backend: torch``, for a GPU without faiss-gpu) finds the groups the
faiss backend finds: same kept rows, same duplicate links, on planted data; its in-cluster pairs
are exactly numpy's; and it runs without faiss's GPU build (here, on the CPU)."""

from __future__ import annotations

import numpy as np
import pytest
from curate_dedup import near, torch_backend
from curate_dedup.semantic import DedupSemanticParams, resolve_engine
from curate_dedup.testing import planted, planted_groups
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.invariants import uids

pytest.importorskip("torch")


@settings(max_examples=15, deadline=None)
@given(data=planted_groups(max_groups=60), clusters=st.sampled_from([None, 2, 8]))
def test_torch_and_faiss_backends_find_the_same_groups(run_on, data, clusters):
    params = {"algorithm": "semdedup", "clusters": clusters}
    faiss = run_on("dedup_semantic", data, {**params, "backend": "faiss"})
    torch = run_on("dedup_semantic", data, {**params, "backend": "torch", "device": "cpu"})
    assert torch.summary["backend"] == "torch" and faiss.summary["backend"] == "faiss"
    assert uids(torch.kept) == uids(faiss.kept)
    assert torch.duplicate_of == faiss.duplicate_of
    assert torch.kept["dup_group"].to_list() == faiss.kept["dup_group"].to_list()


def test_recall_and_precision_on_a_larger_planted_set():
    """Both backends against the exact pairs (brute force): the torch one misses no more pairs,
    and neither reports a pair that is not one."""
    data = planted([3, 1, 2, 1, 5, 1, 1] * 300, dim=64, seed=11, spread=0.6)
    vectors = data.vectors.astype(np.float16)
    threshold = 0.94
    truth = near.brute_force(vectors, threshold)
    exact = set(zip(truth.first.tolist(), truth.second.tolist(), strict=True))
    options = near.SemDedupOptions(clusters=None, niter=20, points_per_centroid=64, spill=0.02)
    found = {}
    for engine in ("faiss", "torch"):
        pairs = near.semdedup(vectors, threshold, options, 0, "cpu", engine=engine)
        found[engine] = set(zip(pairs.first.tolist(), pairs.second.tolist(), strict=True))
        assert found[engine] <= exact, engine  # precision 1
    assert len(found["torch"]) >= 0.99 * len(exact)
    assert len(found["torch"]) >= len(found["faiss"]) - 0.01 * len(exact)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 120), clusters=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_cluster_pairs_equal_numpys(n, clusters, seed):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(max(1, n // 3), 16))
    vectors = base[rng.integers(0, base.shape[0], n)] + rng.normal(scale=0.05, size=(n, 16))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float16)
    label = rng.integers(0, clusters, n)
    order = np.lexsort((np.arange(n), label))
    bounds = np.searchsorted(label[order], np.arange(clusters + 1))
    expected = near._cluster_pairs(vectors, order, bounds, 0.9)
    got = torch_backend.cluster_pairs(torch_backend.Resident(vectors, "cpu"), order, bounds, 0.9)
    assert got[0].tolist() == expected[0].tolist() and got[1].tolist() == expected[1].tolist()
    assert np.allclose(got[2], expected[2], atol=1e-6)


def test_torch_backend_is_semdedup_only():
    with pytest.raises(ValidationError, match="'semdedup' only"):
        DedupSemanticParams(algorithm="knn", backend="torch")


def test_auto_keeps_faiss_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert resolve_engine(DedupSemanticParams(algorithm="semdedup")) == ("faiss", "cpu")
    assert resolve_engine(DedupSemanticParams(algorithm="semdedup", backend="torch")) == ("torch", "cpu")
