"""The static-cache decode path (the one CUDA graphs replay) picks the same tokens as the eager
DynamicCache loop, for every decoder family, greedy and sampled, with the copy bias; batches of one
shape reuse one preallocated cache."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from curate_captioner.generate import generate
from curate_captioner.generate_static import BUCKET, CHECK_EVERY, cache_length
from tests.captioner.conftest import images

PROMPTS = ["a red circle and two blue squares on a striped green background", "", "IMG_0012.jpg", "click here"]


def _prefix(captioner: Any, count: int = len(PROMPTS)) -> torch.Tensor:
    with torch.no_grad():
        return captioner.prefix(*captioner.image_features(images(count)))


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("kind", ["llama", "gpt2", "opt"])
def test_static_greedy_equals_eager(make_captioner: Callable[..., Any], kind: str, fused: bool) -> None:
    captioner = make_captioner(kind, seed=3).double()
    prefix = _prefix(captioner)
    eager = generate(captioner, prefix, PROMPTS, max_new_tokens=12, temperature=0, static=False)
    static = generate(captioner, prefix, PROMPTS, max_new_tokens=12, temperature=0, static=True, fused=fused)
    assert static == eager
    assert all(len(ids) > 0 for ids in static)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("kind", ["llama", "opt"])
def test_static_sampling_and_copy_bias_equal_eager(make_captioner: Callable[..., Any], kind: str,
                                                   fused: bool) -> None:
    captioner = make_captioner(kind, seed=4).double()
    prefix = _prefix(captioner)
    options = {"max_new_tokens": 10, "temperature": 1.0, "top_p": 0.9, "seed": 7, "row_keys": [5, 6, 7, 8],
               "copy_bias": 2.0}
    assert generate(captioner, prefix, PROMPTS, static=True, fused=fused, **options) == \
        generate(captioner, prefix, PROMPTS, static=False, **options)


@pytest.mark.parametrize("max_new_tokens", [1, 2, CHECK_EVERY, CHECK_EVERY + 1, 3 * CHECK_EVERY + 2, BUCKET + 10])
def test_fused_equals_eager_when_rows_finish_at_different_steps(make_captioner: Callable[..., Any],
                                                                max_new_tokens: int) -> None:
    """High temperature makes </s> likely at any step: rows end at different steps, some before
    the host's every-CHECK_EVERY-steps check, some never; the steps run after the last row ended
    must only add padding."""
    captioner = make_captioner("opt", seed=6).double()
    prefix = _prefix(captioner)
    eos = captioner.tokenizer.eos_token_id
    options = {"max_new_tokens": max_new_tokens, "temperature": 3.0, "top_p": 1.0, "seed": 11,
               "row_keys": [1, 2, 3, 4], "copy_bias": 0.0}
    fused = generate(captioner, prefix, PROMPTS, static=True, fused=True, **options)
    assert fused == generate(captioner, prefix, PROMPTS, static=False, **options)
    assert all(len(ids) <= max_new_tokens and eos not in ids for ids in fused)


def test_fused_reuses_its_buffers_across_batches(make_captioner: Callable[..., Any]) -> None:
    """A second batch of the same shape reuses the fused buffers: nothing of the first leaks."""
    captioner = make_captioner("opt", seed=5).double()
    prefix = _prefix(captioner)
    long = generate(captioner, prefix[:2], PROMPTS[:2], max_new_tokens=14, temperature=0, static=True)
    short = generate(captioner, prefix[2:], PROMPTS[2:], max_new_tokens=3, temperature=0, static=True)
    assert short == generate(captioner, prefix[2:], PROMPTS[2:], max_new_tokens=3, temperature=0, static=False)
    assert long == generate(captioner, prefix[:2], PROMPTS[:2], max_new_tokens=14, temperature=0, static=False)


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


@pytest.mark.parametrize("kind", ["llama", "gpt2", "opt"])
def test_fused_attention_windows_equal_eager(make_captioner: Callable[..., Any], kind: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The fused step attends over the written slots rounded up to BUCKET: with a bucket of 8 a
    12-token decode crosses several windows (each its own graph on CUDA) below the cache length."""
    from curate_captioner import generate_static

    monkeypatch.setattr(generate_static, "BUCKET", 8)
    captioner = make_captioner(kind, seed=3).double()
    prefix = _prefix(captioner)
    eager = generate(captioner, prefix, PROMPTS, max_new_tokens=12, temperature=0, static=False)
    assert generate(captioner, prefix, PROMPTS, max_new_tokens=12, temperature=0, static=True) == eager
    options = {"max_new_tokens": 20, "temperature": 1.0, "top_p": 0.9, "seed": 7, "row_keys": [5, 6, 7, 8],
               "copy_bias": 2.0}
    assert generate(captioner, prefix, PROMPTS, static=True, **options) == \
        generate(captioner, prefix, PROMPTS, static=False, **options)
