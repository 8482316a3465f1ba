from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from curate_dedup import evalset
from curate_dedup.testing import planted

from curate.embeddings import EmbeddingStore
from curate.errors import CurateError
from curate.schema import DROP_REASON
from tests.invariants import assert_nothing_lost, uids

pytest.importorskip("faiss")


def leaked(seed: int = 0):
    """40 training rows; eval items 'e0'..'e4' are near-copies of rows 3, 7, 11 and two unseen images."""
    data = planted([1] * 40, dim=32, seed=seed)
    rng = np.random.default_rng(seed + 1)
    unseen = rng.normal(size=(2, 32))
    vectors = np.concatenate([data.vectors[[3, 7, 11]] + rng.normal(scale=0.003, size=(3, 32)), unseen])
    return data, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def eval_store(directory: Path, vectors: np.ndarray, model: str = "synthetic") -> Path:
    store = EmbeddingStore(directory, "eval")
    store.write_meta(vectors.shape[1], model)
    store.write_shard(0, [f"e{i}" for i in range(len(vectors))], vectors)
    return store.dir


def test_rows_matching_an_eval_image_are_dropped_naming_it(run_on, tmp_path):
    data, vectors = leaked()
    result = run_on("decontaminate", data, {"eval": str(eval_store(tmp_path, vectors))})
    assert_nothing_lost(data.table, result)
    leaked_uids = data.table["uid"].gather([3, 7, 11]).to_list()
    assert sorted(uids(result.dropped)) == sorted(leaked_uids)
    reasons = dict(result.dropped.select("uid", DROP_REASON).iter_rows())
    assert reasons == {leaked_uids[0]: "decontaminate: eval e0", leaked_uids[1]: "decontaminate: eval e1",
                       leaked_uids[2]: "decontaminate: eval e2"}
    assert result.dropped["eval_similarity"].min() > 0.99
    assert "eval_item" not in result.kept.columns
    assert result.summary["eval_items"] == 5 and result.summary["eval_items_matched"] == 3


def test_a_parquet_eval_set_is_embedded_with_the_training_model_and_cached(run_on, tmp_path, monkeypatch):
    data, vectors = leaked(seed=4)
    (tmp_path / "eval").mkdir()
    paths = [f"eval/{i:03d}.png" for i in range(len(vectors))]
    for path in paths:
        (tmp_path / path).write_bytes(b"not really an image")
    pl.DataFrame({"eval_id": [10, 11, 12, 13, 14], "image_path": paths}).write_parquet(tmp_path / "eval.parquet")
    calls = []

    def fake_embed(images, model, device, batch_size, within=None):
        calls.append((tuple(p.name for p in images), model["model"]))
        return vectors[[int(p.stem) for p in images]]

    monkeypatch.setattr(evalset, "embed_images", fake_embed)
    result = run_on("decontaminate", data, {"eval": str(tmp_path / "eval.parquet")})
    assert calls == [(("000.png", "001.png", "002.png", "003.png", "004.png"), "synthetic")]
    assert sorted(result.dropped[DROP_REASON].to_list()) == [f"decontaminate: eval {i}" for i in (10, 11, 12)]
    assert result.summary["eval_kind"] == "parquet"

    images = tmp_path / "eval"
    result = run_on("decontaminate", data, {"eval": str(images)})
    assert sorted(result.dropped["eval_item"].to_list()) == ["000.png", "001.png", "002.png"]


def test_mismatched_eval_sets_are_clear_errors(run_on, tmp_path):
    data, vectors = leaked()
    with pytest.raises(CurateError, match="from model 'other'"):
        run_on("decontaminate", data, {"eval": str(eval_store(tmp_path / "a", vectors, model="other"))})
    with pytest.raises(CurateError, match="16 dimensions"):
        run_on("decontaminate", data, {"eval": str(eval_store(tmp_path / "b", vectors[:, :16]))})
    with pytest.raises(CurateError, match="does not exist"):
        run_on("decontaminate", data, {"eval": str(tmp_path / "nowhere")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(CurateError, match="holds no images"):
        run_on("decontaminate", data, {"eval": str(tmp_path / "empty")})
    pl.DataFrame({"path": ["x.png"]}).write_parquet(tmp_path / "bad.parquet")
    with pytest.raises(CurateError, match="no 'image_path' column"):
        run_on("decontaminate", data, {"eval": str(tmp_path / "bad.parquet")})


def test_nothing_is_dropped_without_a_match(run_on, tmp_path):
    data, vectors = leaked()
    result = run_on("decontaminate", data, {"eval": str(eval_store(tmp_path, vectors[3:]))})
    assert result.dropped.height == 0 and result.kept.height == 40
