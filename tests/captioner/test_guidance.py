"""Classifier-free guidance: the logit combination, the guided KV-cached decode against a decode
without cache, batch independence, conditioning dropout in training, and the steps that use them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from curate.plugins import PluginManager
from curate.testing import run_step
from curate_captioner.generate import banned_tokens, generate
from curate_captioner.guidance import Guidance, combine, expand, null_features
from curate_captioner.prompts import build_batch
from curate_captioner.tokenizer import encode
from curate_captioner.train import drop_images
from tests.captioner.conftest import images

PROMPTS = ["a red circle and two blue squares on a striped green background", "", "IMG_0012.jpg"]
scales = st.sampled_from([1.0, 0.5, 1.5, 2.0, 3.0])


@given(image=scales, alt=scales, seed=st.integers(0, 2**16))
def test_combine_is_the_cfg_formula(image: float, alt: float, seed: int) -> None:
    guidance = Guidance(image, alt)
    generator = torch.Generator().manual_seed(seed)
    rows = 3
    logits = torch.randn((rows * guidance.copies, 7), generator=generator, dtype=torch.float64)
    c = logits[:rows]
    expected, part = c.clone(), 1
    if image != 1.0:
        expected += (image - 1) * (c - logits[rows * part : rows * (part + 1)])
        part += 1
    if alt != 1.0:
        expected += (alt - 1) * (c - logits[rows * part : rows * (part + 1)])
    assert torch.allclose(combine(logits, rows, guidance), expected)
    if not guidance.active:
        assert combine(logits, rows, guidance) is logits  # guidance off: the logits untouched


def _naive_guided(captioner: Any, prefix: torch.Tensor, prompt: str, guidance: Guidance, steps: int) -> list[int]:
    """Greedy guided decoding of one row with a full forward per step (no cache, no batching)."""
    stacked, prompts = expand(captioner, prefix, [prompt], guidance)
    tok = captioner.tokenizer
    ids: list[int] = []
    banned = banned_tokens(captioner)
    for _ in range(steps):
        batch = build_batch(encode(tok, prompts), [ids] * len(prompts), prefix_length=captioner.config.prefix_length,
                            max_prompt_tokens=captioner.config.max_prompt_tokens, pad_id=tok.pad_token_id,
                            caption_id=captioner.caption_id, eos_id=tok.eos_token_id)
        out = captioner.decoder(inputs_embeds=captioner.embeds(stacked, batch), attention_mask=batch.attention_mask,
                                position_ids=batch.position_ids, use_cache=False)
        column = batch.prefix_length + batch.prompt_length + len(ids)  # the last token fed
        logits = combine(out.logits[:, column], 1, guidance)
        logits[:, banned] = float("-inf")
        token = int(logits.argmax(dim=-1))
        if token == tok.eos_token_id:
            break
        ids.append(token)
    return ids


@pytest.mark.parametrize("guidance", [Guidance(2.0, 1.0), Guidance(1.0, 1.5), Guidance(3.0, 2.0)], ids=str)
def test_guided_kv_cache_decode_equals_a_decode_without_cache(make_captioner: Callable[..., Any], guidance: Guidance) -> None:
    captioner = make_captioner("llama", seed=3).double()
    with torch.no_grad():
        prefix = captioner.prefix(*captioner.image_features(images(len(PROMPTS))))
        batched = generate(captioner, prefix, PROMPTS, max_new_tokens=6, temperature=0, guidance=guidance)
        alone = [generate(captioner, prefix[i : i + 1], [p], max_new_tokens=6, temperature=0, guidance=guidance)[0]
                 for i, p in enumerate(PROMPTS)]
        naive = [_naive_guided(captioner, prefix[i : i + 1], p, guidance, 6) for i, p in enumerate(PROMPTS)]
        unguided = generate(captioner, prefix, PROMPTS, max_new_tokens=6, temperature=0)
    assert batched == alone == naive
    assert generate(captioner, prefix, PROMPTS, max_new_tokens=6, temperature=0, guidance=Guidance()) == unguided


def test_null_features_give_one_prefix_for_any_token_count(make_captioner: Callable[..., Any]) -> None:
    captioner = make_captioner("llama", features="pooled+tokens", seed=2).double()
    pooled, tokens = null_features(captioner, 2)
    assert tokens is not None and not pooled.any() and not tokens.any()
    many = torch.zeros((2, 9, tokens.shape[2]), dtype=tokens.dtype)  # the zeros training feeds: all patch tokens
    with torch.no_grad():
        assert torch.allclose(captioner.prefix(pooled, tokens), captioner.prefix(pooled, many))


@given(rate=st.floats(0.0, 0.9), seed=st.integers(0, 1000), step=st.integers(0, 1000))
def test_drop_images_zeroes_a_seeded_share(rate: float, seed: int, step: int) -> None:
    pooled, tokens = torch.ones((64, 3)), torch.ones((64, 4, 3))
    a, ta = drop_images(pooled, tokens, rate, [seed, step])
    b, _ = drop_images(pooled, tokens, rate, [seed, step])
    assert torch.equal(a, b)  # deterministic per (seed, step): a resumed run drops the same rows
    assert ta is not None
    dropped = (a.sum(dim=1) == 0)
    assert torch.equal(dropped, ta.sum(dim=(1, 2)) == 0) and torch.equal(~dropped, a.sum(dim=1) == 3)
    if rate == 0:
        assert not dropped.any()


# -- steps ---------------------------------------------------------------------------------------
@pytest.fixture
def table(tmp_path: Path) -> pl.DataFrame:
    paths = []
    for index, image in enumerate(images(4)):
        image.save(tmp_path / f"{index}.png")
        paths.append(f"{index}.png")
    return pl.DataFrame({"uid": [f"u{i}" for i in range(5)], "image": [*paths, "missing.png"],
                         "alt_text": ["a red circle", "Zorblax Tower", "IMG_0012.jpg", "", "a star"]})


def test_realign_with_guidance_keeps_old_fingerprints(pm: PluginManager, saved_captioner: Path, table: pl.DataFrame,
                                                      tmp_path: Path) -> None:
    from curate_captioner.step import Realign

    base = {"model": str(saved_captioner), "images": "path", "image_root": str(tmp_path), "max_new_tokens": 5,
            "batch_size": 2, "device": "cpu"}
    plain = Realign.Params(**base).fingerprint_dict()
    assert "guidance" not in plain and "alt_text_guidance" not in plain  # specs without guidance: same cache
    assert Realign.Params(**base, guidance=2.0).fingerprint_dict()["guidance"] == 2.0
    result = run_step("realign", table, {**base, "guidance": 2.0, "alt_text_guidance": 1.5}, pm=pm)
    captions = result.kept.sort("uid")["caption_realigned"].to_list()
    assert all(isinstance(c, str) for c in captions[:4]) and captions[4] is None


def test_caption_pairs_and_preference_steps(pm: PluginManager, saved_captioner: Path, table: pl.DataFrame, tmp_path: Path) -> None:
    where = {"images": "path", "image_root": str(tmp_path)}
    ranked = run_step("caption_pairs", table, {"model": str(saved_captioner), **where, "clip": 0.0, "length": 1.0,
                                               "margin": 0.0, "batch_size": 2}, pm=pm).kept.sort("uid")
    assert ranked["chosen"][4] is None  # no image: no pair
    for row in ranked.head(4).iter_rows(named=True):
        if row["chosen"] is not None:
            assert row["chosen_score"] >= row["rejected_score"] and row["dimension"] == "textual"
    pairs = table.head(4).with_columns(pl.lit("A large red circle.").alias("chosen"), pl.lit("A blue star.").alias("rejected"),
                                       pl.lit("textual").alias("dimension"))
    result = run_step("preference_captioner", pairs, {"init": str(saved_captioner), **where, "steps": 2, "batch_size": 2,
                                                      "device": "cpu", "length_normalize": True}, pm=pm)
    assert result.summary["stage"] == "preference" and result.summary["pairs"] == 4
    assert result.summary["config"]["length_normalize"] is True
    assert Path(result.summary["model"]).name == "captioner"
