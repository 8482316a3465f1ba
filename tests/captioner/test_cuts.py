"""realign counts the alt-texts it cut at the captioner's max_prompt_tokens in its summary, and warns
once when more than 5 % were cut."""

from __future__ import annotations

import warnings
from pathlib import Path

import polars as pl
import pytest

from curate.plugins import PluginManager
from curate.testing import run_step
from curate_captioner.cuts import PromptCutWarning
from curate_captioner.prompts import build_batch
from tests.captioner.conftest import images

# The test tokenizer spends 3 tokens on each of these characters: 150 tokens, past the 128 read.
LONG = "東京タワー" * 10


def realigned(saved_captioner: Path, tmp_path: Path, pm: PluginManager, alt_texts: list[str | None],
              **more: object):
    paths = []
    for index, image in enumerate(images(len(alt_texts) - 1)):
        image.save(tmp_path / f"{index}.png")
        paths.append(f"{index}.png")
    table = pl.DataFrame({"uid": [f"u{i}" for i in range(len(alt_texts))], "image": [*paths, "missing.png"],
                          "alt_text": alt_texts})
    params = {"model": str(saved_captioner), "images": "path", "image_root": str(tmp_path),
              "max_new_tokens": 3, "batch_size": 2, "device": "cpu", **more}
    return run_step("realign", table, params, shard_size=3, pm=pm)


def test_alt_texts_past_max_prompt_tokens_are_counted_once_and_warned_of(pm, saved_captioner, tmp_path):
    # The last row has no image: it is not captioned, and not counted. Guidance on the alt-text reads
    # each prompt twice in a batch: still one prompt each.
    alt_texts = [LONG, "a red circle", None, "two red circles and a blue square " * 7, "a star", LONG]
    with pytest.warns(PromptCutWarning) as caught:
        result = realigned(saved_captioner, tmp_path, pm, alt_texts, alt_text_guidance=2.0)
    assert result.summary == {"max_prompt_tokens": 128, "prompts": 4, "prompts_cut": 2}
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "step 'realign': 2 of 4 alt-texts (50 %) are longer than the captioner's max_prompt_tokens (128)" \
        in message
    assert "multilingual" in message and "max_length" in message and "score-gated mix" in message


def test_alt_texts_within_max_prompt_tokens_count_zero_and_warn_of_nothing(pm, saved_captioner, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", PromptCutWarning)
        alt_texts = ["a red circle", "東京タワー", None, "a star", LONG]  # the last row has no image
        result = realigned(saved_captioner, tmp_path, pm, alt_texts)
    assert result.summary == {"max_prompt_tokens": 128, "prompts": 3, "prompts_cut": 0}


def test_a_batch_says_which_prompts_it_cut():
    batch = build_batch([[5] * 4, [5] * 3, [], [5] * 9], None, prefix_length=1, max_prompt_tokens=3, pad_id=0,
                        caption_id=1, eos_id=2)
    assert batch.cut == [True, False, False, True]
    assert batch.prompt_length == 3
