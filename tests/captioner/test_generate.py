"""Batched KV-cache decoding: the same captions as decoding each row alone, for every decoder
family; sampling is deterministic per row and does not depend on the batch a row lands in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

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
