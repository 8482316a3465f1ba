"""Best-of-N decoding (``realign``'s ``best_of``): candidate seeds, the world-CLIP pick, the step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curate.plugins import PluginManager
from curate.testing import run_step
from curate_captioner.errors import CaptionerError
from curate_captioner.rerank import best_of_captions, candidate_seed, check_best_of
from tests.captioner.test_step import params, table  # noqa: F401  (fixture)

clip_models = pytest.importorskip("curate_clip.models")
needs_world_clip = pytest.mark.skipif(not clip_models.WORLD_CHECKPOINT.exists(), reason="world CLIP weights not installed")


def test_candidate_zero_is_the_run_seed_and_the_others_differ() -> None:
    assert candidate_seed(7, 0) == 7
    seeds = {candidate_seed(7, k) for k in range(1, 5)}
    assert len(seeds) == 4 and 7 not in seeds and candidate_seed(7, 1) == candidate_seed(7, 1)


def test_best_of_needs_sampling_and_a_candidate() -> None:
    check_best_of(1, 0.0)
    check_best_of(3, 0.2)
    with pytest.raises(CaptionerError, match="greedy"):
        check_best_of(2, 0.0)
    with pytest.raises(CaptionerError, match="at least one"):
        check_best_of(0, 0.2)


def test_best_of_one_decodes_once() -> None:
    calls: list[int] = []

    def decode(seed: int) -> list[str]:
        calls.append(seed)
        return ["a caption"]

    assert best_of_captions([None], decode, best_of=1, seed=3) == ["a caption"]
    assert calls == [3]


@needs_world_clip
def test_world_clip_keeps_the_caption_of_the_image() -> None:
    from curate_world.api import render_scene, sample_scene

    scenes = [sample_scene(np.random.default_rng(seed), entity_rate=0.0) for seed in range(6)]
    scenes = [s for s in scenes if len(s.objects) == 1][:2]
    assert len(scenes) == 2
    images = [render_scene(s, 64) for s in scenes]
    right = [f"a {o.color} {o.shape}" for s in scenes for o in s.objects]
    wrong = ["a caption about nothing in particular, a website banner"] * 2
    by_seed = {0: wrong, candidate_seed(0, 1): right, candidate_seed(0, 2): wrong}
    assert best_of_captions(images, lambda seed: by_seed[seed], best_of=3, seed=0) == right
    same = {0: right, candidate_seed(0, 1): list(right)}
    assert best_of_captions(images, lambda seed: same[seed], best_of=2, seed=0) == right  # ties: the first


@needs_world_clip
def test_realign_best_of_keeps_one_of_the_sampled_captions(pm: PluginManager, saved_captioner: Path, table: pl.DataFrame,  # noqa: F811
                                                            tmp_path: Path) -> None:
    run = lambda seed, **more: run_step("realign", table, params(saved_captioner, tmp_path, **{"temperature": 1.0, **more}),  # noqa: E731
                                        seed=seed, pm=pm).kept.sort("uid")["caption_realigned"].to_list()
    first, second = run(5), run(candidate_seed(5, 1))
    best = run(5, best_of=2)
    assert best[5] is None  # unreadable image: still null
    assert all(b in (f, s) for b, f, s in zip(best[:5], first[:5], second[:5], strict=True))
    assert run(5, best_of=2) == best
    with pytest.raises(Exception, match="greedy"):  # the step's error, whatever the runner wraps it in
        run(5, best_of=2, temperature=0.0)


def test_compare_decoding_settings_parse() -> None:
    from curate_captioner.cli_decoding import parse_setting

    assert parse_setting("default") == {"label": "default"}
    assert parse_setting("bo4:best_of=4,temperature=0.7") == {"label": "bo4", "best_of": 4, "temperature": 0.7}
    with pytest.raises(CaptionerError, match="unknown key"):
        parse_setting("x:beam=2")
    with pytest.raises(CaptionerError, match="not a whole number"):
        parse_setting("x:best_of=two")
    assert parse_setting("plain:prompt_rewrites=none") == {"label": "plain", "prompt_rewrites": []}
    assert parse_setting("f:prompt_rewrites=file_names+fold_shouting")["prompt_rewrites"] == ["file_names", "fold_shouting"]
    with pytest.raises(CaptionerError, match="names an unknown rewrite \\('lower'"):
        parse_setting("x:prompt_rewrites=lower")


def test_best_of_with_greedy_decoding_fails_validation_not_the_run():
    from pydantic import ValidationError

    from curate_captioner.step import Realign

    with pytest.raises(ValidationError, match="best_of 3 needs temperature > 0"):
        Realign.Params(best_of=3, temperature=0.0)
    assert Realign.Params(best_of=3).best_of == 3
