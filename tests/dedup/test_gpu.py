"""The GPU path gives the CPU path's answer. Skipped unless faiss sees a GPU (faiss-gpu build);
no session so far has had one, so this is the only check of that path."""

from __future__ import annotations

import pytest
from curate_dedup import backend
from curate_dedup.testing import planted

from curate.errors import CurateError
from tests.invariants import uids

pytest.importorskip("faiss")


def has_gpu() -> bool:
    try:
        return backend.gpu_count() > 0
    except CurateError:
        return False


def test_asking_for_a_gpu_without_one_is_a_clear_error(run_on):
    if has_gpu():
        pytest.skip("this machine has a GPU")
    with pytest.raises(CurateError, match="faiss sees no GPU"):
        run_on("dedup_semantic", planted([2, 1]), {"device": "gpu"})


@pytest.mark.gpu
@pytest.mark.skipif(not has_gpu(), reason="faiss sees no GPU")
@pytest.mark.parametrize("params", [
    {"algorithm": "knn"},
    {"algorithm": "knn", "index": "ivf", "nlist": 16},
    {"algorithm": "semdedup"},  # far_from_centroid would depend on GPU-trained centroids
])
def test_gpu_and_cpu_agree(run_on, params):
    data = planted([3, 1, 2, 1, 5] * 200, dim=64, seed=7)
    cpu = run_on("dedup_semantic", data, {**params, "device": "cpu"})
    gpu = run_on("dedup_semantic", data, {**params, "device": "gpu"})
    assert gpu.summary["device"] == "gpu"
    assert uids(gpu.kept) == uids(cpu.kept)
    assert gpu.duplicate_of == cpu.duplicate_of
