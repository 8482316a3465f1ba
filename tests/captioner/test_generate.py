"""Batched KV-cache decoding: the same captions as decoding each row alone, for every decoder
family; sampling is deterministic per row and does not depend on the batch a row lands in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from curate_captioner.generate import generate, generate_per_sample_hf, pick_tokens
from tests.captioner.conftest import images

PROMPTS = ["a red circle and two blue squares on a striped green background", "", "IMG_0012.jpg", "click here"]


def _prefix(captioner: Any) -> torch.Tensor:
    with torch.no_grad():
        return captioner.prefix(*captioner.image_features(images(len(PROMPTS))))


@pytest.mark.parametrize("kind", ["llama", "gpt2", "opt"])
def test_batched_greedy_equals_per_sample(make_captioner: Callable[..., Any], kind: str) -> None:
    # float64 so that padding-induced rounding differences cannot flip an argmax.
    captioner = make_captioner(kind, seed=3).double()
    prefix = _prefix(captioner)
    batched = generate(captioner, prefix, PROMPTS, max_new_tokens=10, temperature=0)
    alone = [generate(captioner, prefix[i : i + 1], [p], max_new_tokens=10, temperature=0)[0] for i, p in enumerate(PROMPTS)]
    with_transformers = generate_per_sample_hf(captioner, prefix, PROMPTS, max_new_tokens=10, temperature=0)
    assert batched == alone == with_transformers
    assert all(len(ids) > 0 for ids in batched)


def test_sampling_is_per_row_and_seeded(make_captioner: Callable[..., Any]) -> None:
    captioner = make_captioner("llama", seed=4)
    prefix = _prefix(captioner)
    options = {"max_new_tokens": 12, "temperature": 1.0, "top_p": 0.95, "seed": 7}
    full = generate(captioner, prefix, PROMPTS, row_keys=[10, 11, 12, 13], **options)
    assert full == generate(captioner, prefix, PROMPTS, row_keys=[10, 11, 12, 13], **options)
    reordered = generate(captioner, prefix[[3, 1]], [PROMPTS[3], PROMPTS[1]], row_keys=[13, 11], **options)
    assert reordered == [full[3], full[1]]
    other_seed = generate(captioner, prefix, PROMPTS, row_keys=[10, 11, 12, 13], **{**options, "seed": 8})
    assert other_seed != full


def test_pick_tokens_nucleus() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    # top_p=0.7: only the two most likely tokens survive; u splits them at 0.5/0.8.
    assert pick_tokens(logits, 1.0, 0.7, [0.1]).tolist() == [0]
    assert pick_tokens(logits, 1.0, 0.7, [0.7]).tolist() == [1]
    assert pick_tokens(logits, 1.0, 0.7, [0.999]).tolist() == [1]
    assert pick_tokens(logits, 1.0, 1.0, [0.999]).tolist() == [3]
    # Low temperature sharpens toward the argmax; temperature 0 is the argmax.
    assert pick_tokens(logits, 0.05, 1.0, [0.999]).tolist() == [0]
    assert pick_tokens(logits, 0.0, 0.7, None).tolist() == [0]


def test_captions_never_contain_special_tokens(make_captioner: Callable[..., Any]) -> None:
    captioner = make_captioner("llama", seed=5)
    ids = generate(captioner, _prefix(captioner), PROMPTS, max_new_tokens=8, temperature=1.0, top_p=1.0)
    special = set(captioner.tokenizer.all_special_ids)
    assert not any(token in special for row in ids for token in row)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 49), max_size=8), min_size=1, max_size=5), st.floats(0.1, 20))
def test_the_copy_bias_lands_on_each_rows_own_prompt_tokens_only(prompts, value) -> None:
    from curate_captioner.generate import prompt_bias
    from curate_captioner.prompts import build_batch

    pad, caption, eos = 50, 51, 52
    batch = build_batch(prompts, None, prefix_length=3, max_prompt_tokens=6, pad_id=pad, caption_id=caption,
                        eos_id=eos)
    bias = prompt_bias(batch, pad, value, 53, banned=[caption, 0])
    for row, prompt in enumerate(prompts):
        expected = {t for t in prompt[:6] if t != 0}
        assert {int(i) for i in torch.nonzero(bias[row]).flatten()} == expected
        assert torch.all(bias[row][sorted(expected)] == value) if expected else True


def test_a_copy_bias_pulls_the_caption_toward_the_alt_texts_words(make_captioner: Callable[..., Any]) -> None:
    captioner = make_captioner("llama", seed=6)
    prefix = _prefix(captioner)
    plain = generate(captioner, prefix, PROMPTS, max_new_tokens=8, temperature=0)
    assert generate(captioner, prefix, PROMPTS, max_new_tokens=8, temperature=0, copy_bias=0.0) == plain
    copied = generate(captioner, prefix, PROMPTS, max_new_tokens=8, temperature=0, copy_bias=1e4)
    for row, prompt in enumerate(PROMPTS):
        words = set(captioner.batch([prompt]).text_ids[0].tolist())
        if prompt:  # every token comes from the row's own alt-text (no end token in it: runs to the limit)
            assert set(copied[row]) <= words and len(copied[row]) == 8
        else:  # an empty alt-text has nothing to copy: decoding is unchanged
            assert copied[row] == plain[row]
