"""The text tower run on each text's own tokens (``curate_clip.text_tower``) gives the features
``encode_text`` gives on the padded context: for the shipped world CLIP, for a 77-token context
and end-of-text pooling by id, for any texts (empty, unicode, longer than the context); a text's
length bucket is its own; models it cannot trim, and a probe that disagrees, run whole."""

from __future__ import annotations

import logging

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate_clip.models import load_clip
from curate_clip.text_tower import BUCKET, TextTower, trim_problem

TEXTS = st.lists(st.one_of(st.text(max_size=60), st.text(alphabet="red blue circle star two a and,", max_size=400),
                           st.just("")), min_size=1, max_size=12)


@pytest.fixture(scope="module")
def world_clip():
    return load_clip(device="cpu")


def tiny_clip(context: int = 77, **text: object):
    """A randomly initialised open_clip CLIP with a small tower of the given text config (one per
    config: building it is most of these tests' time)."""
    key = (context, *sorted(text.items()))
    if key not in _TINY:
        _TINY[key] = _build_tiny(context, **text)
    return _TINY[key]


_TINY: dict[tuple, object] = {}


def _build_tiny(context: int, **text: object):
    from open_clip.model import CLIP

    torch.manual_seed(0)
    text_cfg = {"context_length": context, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2, **text}
    return CLIP(embed_dim=32, vision_cfg={"image_size": 32, "patch_size": 16, "width": 64, "layers": 1},
                text_cfg=text_cfg).eval()


def tokenize(texts: list[str], context: int):
    import open_clip

    return open_clip.get_tokenizer("ViT-B-32")(texts, context_length=context)


def assert_same_features(tower: TextTower, model, ids) -> None:
    with torch.inference_mode():
        whole = torch.nn.functional.normalize(model.encode_text(ids), dim=-1)
        trimmed = torch.nn.functional.normalize(tower(ids), dim=-1)
    assert trimmed.shape == whole.shape
    torch.testing.assert_close(trimmed, whole, atol=2e-6, rtol=0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=TEXTS)
def test_world_clip_features_equal_encode_text(world_clip, texts):
    tower = TextTower(world_clip.model)
    assert tower.trims, tower.problem
    assert_same_features(tower, world_clip.model, world_clip.tokenizer(texts))


@pytest.mark.parametrize("text", [{}, {"pool_type": "eos", "eos_id": 49407}])
@settings(max_examples=15, deadline=None)
@given(texts=TEXTS)
def test_a_77_token_context_is_trimmed_to_the_text(text, texts):
    model = tiny_clip(**text)
    tower = TextTower(model)
    assert tower.trims, tower.problem
    assert_same_features(tower, model, tokenize(texts, 77))


@settings(max_examples=15, deadline=None)
@given(texts=TEXTS, others=TEXTS)
def test_a_texts_length_bucket_is_its_own(texts, others):
    model = tiny_clip()
    tower = TextTower(model)
    alone = tower.lengths(tokenize(texts, 77))
    together = tower.lengths(tokenize(texts + others, 77))[:len(texts)]
    assert alone.tolist() == together.tolist()
    ends = tokenize(texts, 77).argmax(dim=-1)
    assert all(length % BUCKET == 0 or length == 77 for length in alone.tolist())
    assert (alone > ends).all() and (alone <= ends + BUCKET).all()


@pytest.mark.parametrize(("text", "why"), [({"no_causal_mask": True}, "causal"), ({"pool_type": "last"}, "pooling")])
def test_models_it_cannot_trim_run_whole(text, why):
    model = tiny_clip(**text)
    problem = trim_problem(model)
    assert problem is not None and why in problem
    tower = TextTower(model)
    ids = tokenize(["a red circle", "two blue stars and a green heart"], 77)
    with torch.inference_mode():
        assert torch.equal(tower(ids), model.encode_text(ids))


def test_a_probe_that_disagrees_falls_back_to_encode_text(caplog):
    model = _build_tiny(77)
    tower = TextTower(model)
    tower._run = lambda ids: torch.zeros(ids.shape[0], 32)  # an encode_text this module does not mirror
    ids = tokenize(["a red circle", "a star"], 77)
    with caplog.at_level(logging.WARNING, logger="curate_clip.text_tower"), torch.inference_mode():
        first = tower(ids)
        again = tower(ids)
        expected = model.encode_text(ids)
    assert not tower.trims and "disagree" in tower.problem
    assert torch.equal(first, expected) and torch.equal(again, expected)
    assert "running every text whole" in caplog.text
