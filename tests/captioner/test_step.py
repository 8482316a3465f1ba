"""The realign step through curate.testing.run_step: contract, determinism, both modes."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from curate.errors import SpecError
from curate.plugins import PluginManager
from curate.testing import run_step
from tests.captioner.conftest import images


@pytest.fixture
def table(tmp_path: Path) -> pl.DataFrame:
    paths = []
    for index, image in enumerate(images(5)):
        path = tmp_path / f"{index}.png"
        image.save(path)
        paths.append(path.name)
    return pl.DataFrame({
        "uid": [f"u{i}" for i in range(6)],
        "image": [*paths, "missing.png"],
        "alt_text": ["a red circle", None, "IMG_0012.jpg", "", "two blue squares", "a star"],
    })


def params(model: Path, tmp_path: Path, **more: object) -> dict[str, object]:
    return {"model": str(model), "images": "path", "image_root": str(tmp_path), "max_new_tokens": 6,
            "batch_size": 2, "device": "cpu", **more}


def test_realign_writes_captions_and_model(pm: PluginManager, saved_captioner: Path, table: pl.DataFrame, tmp_path: Path) -> None:
    result = run_step("realign", table, params(saved_captioner, tmp_path), shard_size=4, pm=pm)
    kept = result.kept.sort("uid")
    assert kept["uid"].to_list() == table["uid"].to_list()
    assert kept.schema["caption_realigned"] == pl.Utf8 and kept.schema["caption_model"] == pl.Utf8
    captions = kept["caption_realigned"].to_list()
    assert all(isinstance(c, str) for c in captions[:5]) and captions[5] is None  # unreadable image: null
    assert kept["caption_model"].unique().to_list()[0].startswith("test-llama@")
    again = run_step("realign", table, params(saved_captioner, tmp_path, batch_size=3), shard_size=2, pm=pm)
    assert again.kept.sort("uid")["caption_realigned"].to_list() == captions  # per-row seeding


def test_no_alt_text_mode_needs_no_alt_text_column(pm: PluginManager, saved_captioner: Path, table: pl.DataFrame, tmp_path: Path) -> None:
    result = run_step("realign", table.drop("alt_text"), params(saved_captioner, tmp_path, mode="no_alt_text"), pm=pm)
    assert result.kept["caption_realigned"].null_count() == 1


def test_list_of_alt_texts_is_one_prompt(pm: PluginManager, saved_captioner: Path, table: pl.DataFrame, tmp_path: Path) -> None:
    listed = table.with_columns(pl.concat_list(pl.col("alt_text"), pl.lit("a star")).alias("alt_texts"))
    result = run_step("realign", listed, params(saved_captioner, tmp_path, alt_text_column="alt_texts", alt_text_list=True,
                                                temperature=0), pm=pm)
    assert result.kept["caption_realigned"].null_count() == 1


def test_missing_column_fails_at_plan_time(pm: PluginManager, saved_captioner: Path, table: pl.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="alt_txt"):
        run_step("realign", table, params(saved_captioner, tmp_path, alt_text_column="alt_txt"), pm=pm)


def test_prompt_rewrites_read_web_alt_texts_as_words(pm: PluginManager, saved_captioner: Path, table: pl.DataFrame,
                                                     tmp_path: Path) -> None:
    """With ``prompt_rewrites`` a shouted alt-text or a file name is captioned as its rewritten form
    is; the alt-text column itself is never changed."""
    def captions(alt_texts: list[str | None], **more: object) -> tuple[list[str | None], list[str | None]]:
        result = run_step("realign", table.with_columns(pl.Series("alt_text", alt_texts)),
                          params(saved_captioner, tmp_path, temperature=0, **more), pm=pm).kept.sort("uid")
        return result["caption_realigned"].to_list(), result["alt_text"].to_list()

    from curate_captioner.rewrite import rewrite_prompt

    rewrites = ["file_names", "fold_shouting"]
    web = ["ZORBLAX TOWER LOGO", None, "IMG_0012.JPG", "", "two-blue-squares.jpg", "the USA flag"]
    rewritten, alt_texts = captions(web, prompt_rewrites=rewrites)
    assert rewritten == captions([t and rewrite_prompt(t, rewrites) for t in web])[0] and alt_texts == web
    assert captions(web, prompt_rewrites=[])[0] == captions(web)[0]  # the test model names none


def test_prompt_rewrites_unset_keep_the_fingerprint() -> None:
    from curate_captioner.step import Realign

    assert "prompt_rewrites" not in Realign.Params().fingerprint_dict()
    assert Realign.Params(prompt_rewrites=[]).fingerprint_dict()["prompt_rewrites"] == []


def test_prompts_join_alt_texts() -> None:
    from curate_captioner.step import prompts_of

    frame = pl.DataFrame({"alts": [["a", "b"], None, ["", "c"]]})
    assert prompts_of(frame, "alts") == ["a; b", "", "c"]
    assert prompts_of(frame, None) == ["", "", ""]


def test_train_captioner_step(pm: PluginManager, saved_captioner: Path, table: pl.DataFrame, tmp_path: Path) -> None:
    rows = table.head(5).with_columns(pl.lit("A large red circle.").alias("caption"))
    result = run_step("train_captioner", rows, {"init": str(saved_captioner), "images": "path", "image_root": str(tmp_path),
                                                "steps": 2, "batch_size": 2, "device": "cpu"}, pm=pm)
    assert result.kept.sort("uid").equals(rows.sort("uid"))  # rows pass through unchanged
    assert result.summary["stage"] == 2 and result.summary["steps"] == 2
    assert Path(result.summary["model"]).name == "captioner"


def test_retrained_weights_under_the_same_path_change_the_realign_fingerprint(tmp_path):
    import shutil

    from curate_captioner.config import WORLD_MODEL_DIR
    from curate_captioner.step import Realign

    model = tmp_path / "captioner"
    shutil.copytree(WORLD_MODEL_DIR, model)
    step = Realign(Realign.Params(model=str(model)))
    before = step.fingerprint_extra()
    assert before["model_files"] and before == step.fingerprint_extra()
    weights = model / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one flipped bit in the weights: a retrained model for the cache's purposes
    weights.write_bytes(bytes(data))
    assert step.fingerprint_extra() != before
