from __future__ import annotations

import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from curate_dedup.semantic import DedupSemanticParams
from curate_dedup.testing import planted, planted_groups
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from curate.errors import CurateError
from curate.schema import DROP_REASON, DUPLICATE_OF
from tests.invariants import assert_nothing_lost, uids

pytest.importorskip("faiss")

ALGORITHMS = st.sampled_from([
    {"algorithm": "knn"},
    {"algorithm": "knn", "index": "ivf", "nlist": 4, "nprobe": 4},
    {"algorithm": "semdedup"},
    {"algorithm": "semdedup", "clusters": 3},
])
POLICIES = st.sampled_from([
    {"keep": "first"}, {"keep": "last"}, {"keep": "max", "order_by": "clip_score"},
    {"keep": "min", "order_by": "clip_score"}, {"keep": "far_from_centroid"},
])


def survivors_by_group(data, result) -> dict[int, list[str]]:
    kept = set(uids(result.kept))
    out: dict[int, list[str]] = {}
    for uid, group in zip(data.table["uid"], data.truth):
        if uid in kept:
            out.setdefault(int(group), []).append(uid)
    return out


@given(data=planted_groups(), algorithm=ALGORITHMS, policy=POLICIES, shard_size=st.sampled_from([7, 1000]))
def test_exactly_one_survivor_per_planted_group_under_every_policy(run_on, data, algorithm, policy, shard_size):
    result = run_on("dedup_semantic", data, {**algorithm, **policy}, shard_size=shard_size)
    assert_nothing_lost(data.table, result)
    survivors = survivors_by_group(data, result)
    assert set(survivors) == set(data.truth.tolist())
    assert all(len(members) == 1 for members in survivors.values())
    # Every dropped row names the survivor of its own planted group, which was kept.
    group_of = dict(zip(data.table["uid"], data.truth))
    for dropped, survivor in result.duplicate_of.items():
        assert group_of[dropped] == group_of[survivor]
        assert survivors[group_of[survivor]] == [survivor]


@given(data=planted_groups(), policy=POLICIES)
def test_the_policy_picks_the_survivor(run_on, data, policy):
    result = run_on("dedup_semantic", data, policy)
    table = data.table.with_row_index("position")
    for group, (survivor,) in survivors_by_group(data, result).items():
        members = table.filter(pl.col("truth") == group)
        keep = policy["keep"]
        if keep == "first":
            assert survivor == members["uid"][0]
        elif keep == "last":
            assert survivor == members["uid"][-1]
        elif keep in ("max", "min"):
            best = members["clip_score"].max() if keep == "max" else members["clip_score"].min()
            assert survivor == members.filter(pl.col("clip_score") == best)["uid"][0]
        else:  # least similar to the group's mean direction (knn has no k-means centroids)
            vectors = data.vectors[members["position"].to_numpy()]
            mean = vectors.sum(axis=0) / np.linalg.norm(vectors.sum(axis=0))
            similarity = vectors.astype(np.float16).astype(np.float32) @ mean
            candidates = members["uid"].to_numpy()[similarity <= similarity.min() + 1e-3]
            assert survivor in candidates


@given(data=planted_groups(), algorithm=ALGORITHMS, policy=POLICIES)
def test_dedup_is_idempotent(run_on, data, algorithm, policy):
    params = {**algorithm, **policy}
    once = run_on("dedup_semantic", data, params)
    kept = data.table.filter(pl.col("uid").is_in(once.kept["uid"].to_list()))
    twice = run_on("dedup_semantic", data, params, table=kept)
    assert uids(twice.kept) == uids(once.kept)
    assert twice.dropped.height == 0


@given(data=planted_groups(max_groups=60), clusters=st.sampled_from([None, 2, 8]))
def test_knn_and_semdedup_agree_on_well_separated_groups(run_on, data, clusters):
    knn = run_on("dedup_semantic", data, {"algorithm": "knn"})
    semdedup = run_on("dedup_semantic", data, {"algorithm": "semdedup", "clusters": clusters})
    assert uids(knn.kept) == uids(semdedup.kept)
    assert knn.duplicate_of == semdedup.duplicate_of
    assert knn.kept["dup_group"].to_list() == semdedup.kept["dup_group"].to_list()


def test_groups_ids_and_columns(run_on):
    data = planted([3, 1, 2], seed=3)
    result = run_on("dedup_semantic", data)
    assert result.schema["dup_group"] == pl.Int64
    everything = pl.concat([result.kept, result.dropped], how="diagonal_relaxed")
    by_truth = everything.group_by("truth").agg(pl.col("dup_group").unique())
    for truth, ids in by_truth.iter_rows():
        assert len(ids) == 1 and (ids[0] is None) == (int((data.truth == truth).sum()) == 1)
    assert sorted(everything["dup_group"].drop_nulls().unique().to_list()) == [0, 1]
    assert set(result.dropped[DROP_REASON]) == {"dedup_semantic"}
    assert result.dropped["dup_similarity"].min() > 0.99
    assert result.summary["groups"] == 2 and result.summary["dropped"] == 3
    assert result.summary["threshold"] == pytest.approx(0.94)


def test_rows_without_an_embedding_are_kept(run_on):
    data = planted([4, 4], seed=1)
    missing = set(data.table["uid"][:3])
    result = run_on("dedup_semantic", data, missing=missing)
    assert_nothing_lost(data.table, result)
    assert missing <= set(uids(result.kept))
    assert result.summary["rows_without_embedding"] == 3


def test_threshold_is_strict_and_eps_moves_it(run_on):
    base = planted([1, 1], dim=32, seed=5)
    vectors = base.vectors.copy()
    other = vectors[1] - (vectors[1] @ vectors[0]) * vectors[0]
    vectors[1] = 0.9 * vectors[0] + np.sqrt(1 - 0.81) * other / np.linalg.norm(other)
    data = type(base)(base.table, vectors)
    similarity = float(vectors[0].astype(np.float16).astype(np.float32) @ vectors[1].astype(np.float16).astype(np.float32))
    below = run_on("dedup_semantic", data, {"eps": 1 - similarity - 0.01})
    above = run_on("dedup_semantic", data, {"eps": 1 - similarity + 0.01})
    assert below.dropped.height == 0
    assert above.dropped.height == 1


def test_same_input_same_output(run_on):
    data = planted([2, 3, 1, 4] * 20, seed=9, spread=0.5)
    for params in ({"algorithm": "semdedup"}, {"algorithm": "knn", "index": "ivf", "nlist": 8}):
        first = run_on("dedup_semantic", data, params)
        second = run_on("dedup_semantic", data, params)
        assert first.kept.equals(second.kept) and first.dropped.equals(second.dropped)


def test_missing_or_wrong_embeddings_are_clear_errors(dedup_pm, tmp_path, run_on):
    from curate.testing import run_step

    data = planted([2, 2])
    with pytest.raises(CurateError, match="no upstream step stored them"):
        run_step("dedup_semantic", data.table, pm=dedup_pm, workdir=tmp_path)
    with pytest.raises(CurateError, match="'nope' is not a step upstream"):
        run_on("dedup_semantic", data, {"embeddings_from": "nope"})
    with pytest.raises(CurateError, match="stored no 'text' embeddings"):
        run_on("dedup_semantic", data, {"embeddings_from": "clip", "embedding": "text"})


def test_params_are_checked():
    with pytest.raises(ValidationError, match="needs 'order_by'"):
        DedupSemanticParams(keep="max")
    with pytest.raises(ValidationError, match="only applies"):
        DedupSemanticParams(keep="far_from_centroid", order_by="clip_score")
    with pytest.raises(ValidationError):
        DedupSemanticParams(eps=0)
    with pytest.raises(ValidationError):
        DedupSemanticParams(algorithm="minhash")
    assert DedupSemanticParams().fingerprint_dict() == DedupSemanticParams(device="cpu", threads=1).fingerprint_dict()


def test_empty_and_tiny_tables(run_on):
    for sizes in ([1], [2]):
        data = planted(sizes)
        for algorithm in ("knn", "semdedup"):
            result = run_on("dedup_semantic", data, {"algorithm": algorithm, "keep": "far_from_centroid"})
            assert result.kept.height == 1
    data = planted([1])
    empty = data.table.clear()
    result = run_on("dedup_semantic", data, table=empty)
    assert result.kept.height == 0 and result.dropped.height == 0


def test_importing_curate_does_not_import_faiss():
    code = ("import sys, curate, curate.cli; from curate.plugins import get_plugin_manager; "
            "get_plugin_manager().steps; print('faiss' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_dropped_rows_name_their_survivor(run_on):
    data = planted([5], seed=2)
    result = run_on("dedup_semantic", data)
    assert result.kept.height == 1
    assert set(result.dropped[DUPLICATE_OF]) == {result.kept["uid"][0]}


def test_spill_finds_pairs_that_a_cluster_boundary_separates(run_on):
    """Two blobs (two k-means clusters) and a near-duplicate pair straddling the boundary."""
    base = planted([1] * 102, dim=32, seed=13)
    rng = np.random.default_rng(0)
    e1, e2 = np.eye(32)[0], np.eye(32)[1]
    blobs = np.concatenate([e1 + rng.normal(scale=0.05, size=(50, 32)), e2 + rng.normal(scale=0.05, size=(50, 32))])
    t = 0.02
    pair = np.stack([(1 + t) * e1 + (1 - t) * e2, (1 - t) * e1 + (1 + t) * e2])
    vectors = np.concatenate([blobs, pair])
    data = type(base)(base.table, (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32))
    pair_uids = set(data.table["uid"][100:])
    split = run_on("dedup_semantic", data, {"algorithm": "semdedup", "clusters": 2, "eps": 0.01, "spill": 0})
    assert split.dropped.height == 0 and split.summary["clusters"] == 2
    spilled = run_on("dedup_semantic", data, {"algorithm": "semdedup", "clusters": 2, "eps": 0.01, "spill": 0.05})
    assert set(uids(spilled.dropped)) < pair_uids and spilled.dropped.height == 1
    knn = run_on("dedup_semantic", data, {"algorithm": "knn", "eps": 0.01})
    assert uids(knn.dropped) == uids(spilled.dropped)
