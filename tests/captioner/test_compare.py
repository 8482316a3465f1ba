"""compare.py: per-row metrics against ground truth, bootstrap CIs, caption→image retrieval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

import torch
from hypothesis import given
from hypothesis import strategies as st

from curate_captioner.compare import bootstrap, retrieval, row_metrics
from curate_captioner.pairs import caption
from curate_world.testing import scenes


@given(scene=scenes(), named=st.booleans())
def test_the_faithful_caption_scores_perfectly(scene: Any, named: bool) -> None:
    names = {scene.entity} if named and scene.entity else set()
    metrics = row_metrics([caption(scene, names)], [scene], [named])
    assert metrics["attribute_accuracy"] == [1.0] and metrics["wrong_attribute"] == [0.0]
    assert metrics["missed_object"] == [0.0] and metrics["hallucinated_entity"] == [0.0]
    assert metrics["entity_retention"] == ([1.0] if names else [None])


@given(values=st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=1, max_size=40))
def test_bootstrap_brackets_the_mean_and_a_self_difference_is_zero(values: list[float | None]) -> None:
    result = bootstrap(values, resamples=200)
    if all(v is None for v in values):
        assert result is None
        return
    assert result is not None and result["low"] - 1e-4 <= result["mean"] <= result["high"] + 1e-4
    assert result["n"] == sum(v is not None for v in values)
    same = bootstrap(values, values, resamples=200)
    assert same is not None and same["mean"] == same["low"] == same["high"] == 0.0


def test_retrieval_counts_an_identical_scene_as_a_hit() -> None:
    images = torch.eye(3)
    texts = torch.tensor([[1.0, 0, 0], [1.0, 0.1, 0], [0, 0, 1.0]])
    own, hits = retrieval(images, torch.nn.functional.normalize(texts, dim=-1), ["a", "a", "c"])
    assert hits == [1.0, 1.0, 1.0]  # row 1 retrieves image 0, which shows the same scene
    _, hits = retrieval(images, torch.nn.functional.normalize(texts, dim=-1), ["a", "b", "c"])
    assert hits == [1.0, 0.0, 1.0] and len(own) == 3


def test_written_rows_reproduce_the_means_and_pair_any_two_runs(tmp_path: Path) -> None:
    from curate_captioner.compare import METRICS, ROWS_FILE, bootstrap, paired_from_rows, write

    rng = np.random.default_rng(0)
    keys = list(range(40))
    per_row = {label: {m: [float(v) for v in rng.integers(0, 2, 40)] for m in METRICS} for label in ("a", "b", "c")}
    per_row["c"]["entity_retention"] = [None if i % 3 else v for i, v in enumerate(per_row["c"]["entity_retention"])]
    result = {"world": "w", "rows": 40, "unseen_rows": 40, "exclude": [], "seed": 0, "runs": [{"label": k} for k in per_row],
              "captions_per_second": {}, "per_row": {"world_id": keys, "runs": per_row},
              "metrics": {label: {m: {"value": bootstrap(values[m])} for m in METRICS} for label, values in per_row.items()}}
    write(result, tmp_path)
    assert "per_row" not in json.loads((tmp_path / "COMPARE.json").read_text())
    rows = pl.read_parquet(tmp_path / ROWS_FILE)
    for label, values in per_row.items():
        for metric in METRICS:
            assert bootstrap(rows.filter(pl.col("run") == label)[metric].to_list()) == result["metrics"][label][metric]["value"]
    assert paired_from_rows(rows, "c", "b", "entity_retention") == bootstrap(per_row["c"]["entity_retention"], per_row["b"]["entity_retention"])
    assert paired_from_rows(rows, "a", "a", "attribute_accuracy")["mean"] == 0


def test_a_run_s_prompt_rewrites_apply_to_that_run_only(saved_captioner: Path, tmp_path: Path) -> None:
    """Runs share a loaded model: a run with its own ``prompt_rewrites`` must not leak them into the
    runs after it (the third run is the first again and must caption exactly as it did)."""
    from curate_captioner.compare import compare_world
    from curate_world.generate import generate_world

    world = generate_world(tmp_path / "w", n=30, seed=11, fault_rate=0.0, eval_n=0, web_style_rate=1.0,
                           web_style_weights={"all_caps": 1.0}).dir
    runs = [{"label": "as_written", "model": str(saved_captioner), "prompt_rewrites": []},
            {"label": "rewritten", "model": str(saved_captioner), "prompt_rewrites": ["fold_shouting"]},
            {"label": "default", "model": str(saved_captioner)}]
    result = compare_world(world, runs, rows=30, batch_size=8, log=lambda _: None)
    per_run = result["per_row"]["runs"]
    assert per_run["default"] == per_run["as_written"]  # the test model names no rewrites
    assert [r.get("prompt_rewrites") for r in result["runs"]] == [[], ["fold_shouting"], None]
