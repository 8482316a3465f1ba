"""The static-cache decode path (the one CUDA graphs replay) picks the same tokens as the eager
DynamicCache loop, for every decoder family, greedy and sampled, with the copy bias; batches of one
shape reuse one preallocated cache."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from curate_captioner.generate import generate
from curate_captioner.generate_static import BUCKET, cache_length
from tests.captioner.conftest import images

PROMPTS = ["a red circle and two blue squares on a striped green background", "", "IMG_0012.jpg", "click here"]


def _prefix(captioner: Any, count: int = len(PROMPTS)) -> torch.Tensor:
    with torch.no_grad():
        return captioner.prefix(*captioner.image_features(images(count)))


@pytest.mark.parametrize("kind", ["llama", "gpt2", "opt"])
def test_static_greedy_equals_eager(make_captioner: Callable[..., Any], kind: str) -> None:
    captioner = make_captioner(kind, seed=3).double()
    prefix = _prefix(captioner)
    eager = generate(captioner, prefix, PROMPTS, max_new_tokens=12, temperature=0, static=False)
    static = generate(captioner, prefix, PROMPTS, max_new_tokens=12, temperature=0, static=True)
    assert static == eager
    assert all(len(ids) > 0 for ids in static)


@pytest.mark.parametrize("kind", ["llama", "opt"])
def test_static_sampling_and_copy_bias_equal_eager(make_captioner: Callable[..., Any], kind: str) -> None:
    captioner = make_captioner(kind, seed=4).double()
    prefix = _prefix(captioner)
    options = {"max_new_tokens": 10, "temperature": 1.0, "top_p": 0.9, "seed": 7, "row_keys": [5, 6, 7, 8],
               "copy_bias": 2.0}
    assert generate(captioner, prefix, PROMPTS, static=True, **options) == \
        generate(captioner, prefix, PROMPTS, static=False, **options)


def test_one_cache_per_shape_reused_across_batches(make_captioner: Callable[..., Any]) -> None:
    captioner = make_captioner("opt", seed=5).double()
    prefix = _prefix(captioner)
    first = generate(captioner, prefix[:2], PROMPTS[:2], max_new_tokens=8, temperature=0, static=True)
    # Other rows of the same shape: the cache (holding the first batch's keys) is reused, and
    # what it held does not leak into the second batch's captions.
    second = generate(captioner, prefix[2:], PROMPTS[2:], max_new_tokens=8, temperature=0, static=True)
    decoders = captioner.__dict__["_static_decoders"]
    assert len(decoders) == 1  # two rows, one cache length: one shape
    assert all(runner.cache.keys_ for runner in decoders.values())  # the decoder wrote into our cache
    assert second == generate(captioner, prefix[2:], PROMPTS[2:], max_new_tokens=8, temperature=0, static=False)
    assert first == generate(captioner, prefix[:2], PROMPTS[:2], max_new_tokens=8, temperature=0, static=False)


def test_cache_length_is_bucketed() -> None:
    assert cache_length(10, 1) % BUCKET == 0 and cache_length(10, 1) >= 11
    assert cache_length(20, 40) == cache_length(24, 40) == BUCKET
    assert cache_length(30, 40) < cache_length(30, 40 + BUCKET)
