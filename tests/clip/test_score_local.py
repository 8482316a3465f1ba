"""clip_score on images read from a world directory: scores, nulls, embeddings, requirements."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from curate.embeddings import EmbeddingStore
from curate.errors import SpecError
from curate.step import StepContext
from curate.testing import run_step
from curate_clip.cuts import TextCutWarning
from curate_clip.score import ClipScore, score_column
from tests.clip.conftest import image_table


def test_score_columns_are_named_after_their_text_column():
    assert score_column("alt_text") == "clip_score"
    assert score_column("caption") == "clip_score_caption"
    step = ClipScore(ClipScore.Params(texts=["alt_text", "caption"]))
    assert step.output_columns() == {"clip_score": pl.Float32, "clip_score_caption": pl.Float32}


def test_rows_without_image_or_text_get_a_null_score_and_the_rest_a_cosine(small_world, tmp_path):
    missing = pl.struct(pl.lit(str(tmp_path)).alias("shard"), pl.lit("gone").alias("key"))
    table = image_table(small_world, limit=12).with_row_index("i").with_columns(
        pl.when(pl.col("i") == 3).then(None)  # a failed download
        .when(pl.col("i") == 7).then(missing)  # a reference to an image that is not there
        .otherwise(pl.col("image")).alias("image"),
        pl.when(pl.col("i") == 5).then(None).otherwise(pl.col("alt_text")).alias("alt_text"),
    ).drop("i")
    with pytest.warns(TextCutWarning, match="texts of gt_description"):  # the world CLIP reads 32 tokens
        result = run_step("clip_score", table, {"texts": ["alt_text", "gt_description"], "batch_size": 5},
                          shard_size=4)
    kept = result.kept
    assert kept["uid"].to_list() == table["uid"].to_list()  # scoring never drops or reorders rows
    assert kept.schema["clip_score"] == pl.Float32
    nulls = kept.with_row_index("i").filter(pl.col("clip_score").is_null())["i"].to_list()
    assert nulls == [3, 5, 7]
    assert kept["clip_score_gt_description"].null_count() == 2  # the rows without an image
    scores = kept["clip_score"].drop_nulls().to_numpy()
    assert np.all(np.abs(scores) <= 1.0001)


def test_embeddings_are_stored_once_per_uid_normalized_float16(small_world, tmp_path):
    table = image_table(small_world, limit=10)
    step = ClipScore(ClipScore.Params(batch_size=4))
    ctx = StepContext(run_dir=tmp_path, label="clip_score", seed=0, artifacts=tmp_path / "artifacts", shard=0)
    step.setup(ctx)
    scored = step.process_shard(table, ctx)
    images = EmbeddingStore(ctx.artifacts, "image")
    texts = EmbeddingStore(ctx.artifacts, "text_alt_text")
    uids, vectors = images.load_all(dtype=np.float16)
    assert uids.to_list() == table["uid"].to_list()
    assert np.allclose(np.linalg.norm(vectors.astype(np.float32), axis=1), 1, atol=1e-2)
    assert images.meta()["model"].startswith("world-clip-tiny@")
    text_vectors = texts.lookup(table["uid"])
    cosine = (images.lookup(table["uid"]) * text_vectors).sum(axis=1)
    assert np.allclose(cosine, scored["clip_score"].to_numpy(), atol=5e-3)  # the score is the stored cosine


def test_true_descriptions_outscore_boilerplate_and_empty_alt_text(small_world):
    table = image_table(small_world)
    with pytest.warns(TextCutWarning, match="texts of gt_description"):  # the world CLIP reads 32 tokens
        kept = run_step("clip_score", table, {"texts": ["alt_text", "gt_description"]}).kept
    truth = kept["clip_score_gt_description"].mean()
    junk = kept.filter(pl.col("gt_noise_type").is_in(["boilerplate", "empty", "unrelated"]))["clip_score"].mean()
    assert truth > junk + 0.2


def test_missing_torch_gives_the_install_line_at_plan_time(monkeypatch):
    import curate.validation
    from curate.plugins import get_plugin_manager
    from curate.plan import make_plan
    from curate.spec import load_spec_text

    real = curate.validation._find_spec
    monkeypatch.setattr(curate.validation, "_find_spec", lambda m: None if m == "torch" else real(m))
    text = "name: t\nsource: {format: parquet, path: rows.parquet}\nsteps:\n  - step: clip_score\n"
    with pytest.raises(SpecError) as error:
        make_plan(load_spec_text(text, None), get_plugin_manager(), None)
    assert "pip install 'curate[clip]'" in str(error.value)


# -- edits: each text against its minimal edits ---------------------------------------------------
def test_with_edits_the_margin_is_the_text_score_minus_its_best_edit(small_world):
    import torch
    from PIL import Image

    from curate_clip.edits import minimal_edits, resolve_vocabulary
    from curate_clip.models import load_clip

    table = image_table(small_world, limit=16)
    kept = run_step("clip_score", table, {"edits": "world", "batch_size": 6}, shard_size=7).kept
    assert kept.schema["clip_edit_margin"] == kept.schema["clip_edit_score"] == pl.Float32
    vocabulary = resolve_vocabulary("world")
    clip = load_clip(device="cpu")
    checked = 0
    for row in kept.iter_rows(named=True):
        edits = [e.text for e in minimal_edits(row["alt_text"] or "", vocabulary, 64)]
        if not edits:  # boilerplate, an empty text: no edit, so no margin, and the score as it is
            assert row["clip_edit_margin"] is None
            assert row["clip_edit_score"] == row["clip_score"]
            continue
        pixels = clip.preprocess(Image.open(small_world / "images" / f"{row['uid']}.jpg").convert("RGB"))[None]
        with torch.inference_mode():
            image = torch.nn.functional.normalize(clip.model.encode_image(pixels), dim=-1)
            texts = torch.nn.functional.normalize(clip.model.encode_text(clip.tokenizer([row["alt_text"], *edits])), dim=-1)
        scores = (texts @ image.T).squeeze(1).numpy()
        assert row["clip_edit_margin"] == pytest.approx(scores[0] - scores[1:].max(), abs=2e-3)
        assert row["clip_edit_score"] == pytest.approx(row["clip_score"] + 6.0 * row["clip_edit_margin"], abs=1e-4)
        checked += 1
    assert 0 < checked < kept.height  # rows with edits and rows without


def test_a_wrong_attribute_loses_to_the_edit_that_corrects_it(small_world):
    table = image_table(small_world).filter(pl.col("gt_noise_type").is_in(["faithful", "wrong_attribute"]))
    kept = run_step("clip_score", table, {"edits": "world"}).kept
    margins = kept.group_by("gt_noise_type").agg(pl.col("clip_edit_margin").median())
    median = dict(margins.iter_rows())
    # Some edit of a true text scores about as well by chance (the best of ~30), so a true text's
    # margin sits near 0; one attribute wrong puts it well below.
    assert median["faithful"] > median["wrong_attribute"] + 0.05


def test_an_unknown_vocabulary_is_a_plan_error_naming_the_known_ones():
    problems = ClipScore(ClipScore.Params(edits="wrold")).plan_check({})
    assert len(problems) == 1 and "unknown vocabulary 'wrold'; known: world" in problems[0]


def test_an_inline_vocabulary_is_checked_with_the_params_and_changes_the_fingerprint():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="at least 2 items"):
        ClipScore.Params(edits={"classes": {"color": {"words": ["red"]}}})
    one = ClipScore(ClipScore.Params(edits={"classes": {"color": {"words": ["red", "blue"]}}}))
    two = ClipScore(ClipScore.Params(edits={"classes": {"color": {"words": ["red", "green"]}}}))
    assert one.params.fingerprint_dict() != two.params.fingerprint_dict()
    assert ClipScore(ClipScore.Params(edits="world")).fingerprint_extra()["vocabulary"]["classes"]["shape"]["nouns"]


def test_edit_margins_do_not_depend_on_how_rows_are_chunked(small_world, monkeypatch):
    import curate_clip.score

    table = image_table(small_world, limit=20)
    whole = run_step("clip_score", table, {"edits": "world"}).kept
    monkeypatch.setattr(curate_clip.score, "EDIT_ROWS", 3)
    chunked = run_step("clip_score", table, {"edits": "world"}).kept
    assert whole["clip_edit_margin"].null_count() == chunked["clip_edit_margin"].null_count()
    difference = (whole["clip_edit_margin"] - chunked["clip_edit_margin"]).abs().max()
    assert difference is None or difference < 1e-5


def test_a_huge_alt_text_is_edited_as_far_as_the_tokenizer_reads_it(small_world):
    """An alt-text of 20 000 colour words scores and edits as its first MAX_TEXT_CHARS characters,
    and its max_edits edits are not max_edits copies of it (256 x 340 kB before)."""
    import tracemalloc

    from curate_clip.tokens import MAX_TEXT_CHARS

    huge = "a red circle and " * 20_000
    first = image_table(small_world, limit=1)
    table = pl.concat([first.with_columns(pl.lit(huge).alias("alt_text")),
                       first.with_columns(pl.lit("x").alias("uid"), pl.lit(huge[:MAX_TEXT_CHARS]).alias("alt_text"))])
    tracemalloc.start()
    try:
        with pytest.warns(TextCutWarning, match="2 of 2 texts of alt_text"):
            kept = run_step("clip_score", table, {"edits": "world", "max_edits": 256}).kept
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert kept["clip_edit_margin"].null_count() == 0
    assert kept["clip_score"][0] == kept["clip_score"][1] and kept["clip_edit_margin"][0] == kept["clip_edit_margin"][1]
    assert peak < 48 * 2**20
