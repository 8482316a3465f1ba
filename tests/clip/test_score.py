"""clip_score on a real run: world → download (img2dataset, loopback) → clip_score."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from curate.embeddings import EmbeddingStore
from curate.testing import run_spec
from curate.testing.runner import read_step_output
from curate_clip.cuts import TextCutWarning

pytestmark = [pytest.mark.network, pytest.mark.slow]


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("clip_run")
    spec = {
        "name": "clip",
        "source": {"format": "world", "params": {"n": 60, "seed": 7, "fault_rate": 0.1, "port": 0,
                                                  "dir": str(work / "world"), "slow_seconds": 0.5}},
        "steps": [
            {"step": "download", "params": {"image_size": 64, "resize_mode": "no", "timeout": 2,
                                            "allowed_hosts": ["127.0.0.1"], "threads": 8}},
            # Every scored text gets edits, at most 4 of them: a world alt-text has ~30, and encoding
            # them all was most of this run's time, for no assertion that needs more than one.
            {"step": "clip_score", "params": {"batch_size": 16, "texts": ["alt_text", "gt_description"],
                                              "edits": "world", "max_edits": 4}},
        ],
        "run": {"shard_size": 30},  # two shards: the embeddings of both are stored side by side
    }
    with pytest.warns(TextCutWarning, match="texts of gt_description"):  # past the world CLIP's 32 tokens
        return run_spec(spec, work)


def test_every_row_with_an_image_gets_scores_and_the_rest_null(scored_run):
    table = read_step_output(scored_run, "clip_score")
    assert table.height == 60
    has_image = table["image"].is_not_null()
    assert table.filter(has_image)["clip_score"].null_count() == table.filter(has_image)["alt_text"].null_count()
    assert table.filter(~has_image)["clip_score"].null_count() == (~has_image).sum()
    assert table["clip_score_gt_description"].dtype == pl.Float32
    finite = table["clip_score"].drop_nulls()
    assert ((finite >= -1.0001) & (finite <= 1.0001)).all()


def test_embeddings_are_stored_once_per_uid_normalized(scored_run):
    record = next(r for r in scored_run["steps"] if r["label"] == "clip_score")
    store = EmbeddingStore.of_step(record["path"], "image")
    uids, vectors = store.load_all()
    table = read_step_output(scored_run, "clip_score")
    assert sorted(uids.to_list()) == sorted(table.filter(pl.col("image").is_not_null())["uid"].to_list())
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-2)
    assert store.meta()["dim"] == vectors.shape[1]
    assert EmbeddingStore.of_step(record["path"], "text_alt_text").exists()


def test_true_descriptions_outscore_boilerplate(scored_run):
    table = read_step_output(scored_run, "clip_score").filter(pl.col("clip_score").is_not_null())
    truth = table["clip_score_gt_description"].mean()
    noise = table.filter(pl.col("gt_noise_type").is_in(["boilerplate", "empty", "unrelated"]))["clip_score"].mean()
    assert truth > noise


def test_the_pipeline_eval_reads_the_edit_score_beside_the_score(scored_run, tmp_path):
    from pathlib import Path

    from curate_world.web_eval import clip_from_run

    result = clip_from_run(Path(scored_run["run_dir"]))
    table = read_step_output(scored_run, "clip_score")
    assert result["rows"] == table.height
    assert table["clip_edit_score_gt_description"].null_count() == table["clip_score_gt_description"].null_count()
    edited = result["with_edits"]
    assert set(edited["gap_to_clip_score"]) == {"aligned_vs_misaligned", "partial_vs_wrong_attribute"}
    gap = edited["gap_to_clip_score"]["aligned_vs_misaligned"]["value"]
    assert abs(gap - (edited["aligned_vs_misaligned"]["value"] - result["aligned_vs_misaligned"]["value"])) < 2e-4
