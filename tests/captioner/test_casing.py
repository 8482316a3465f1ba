"""Folding shouted prompts (curate_captioner.casing): properties over any text, the web's cases,
and the captioner reading its prompts through the fold its config names."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from curate_captioner.casing import MIN_LETTERS, fold_shouting, is_shouted, prompt_text

TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)
WORDY = st.text(alphabet=st.sampled_from("abcXYZ ÄÖéÉİıßẞ'’-,.4_"), max_size=60)


@given(st.one_of(TEXT, WORDY))
def test_folding_only_lowers_letters(text: str) -> None:
    folded = fold_shouting(text)
    assert len(folded) == len(text)
    for before, after in zip(text, folded, strict=True):
        assert after == before or after == before.lower()


@given(st.one_of(TEXT, WORDY))
def test_folding_twice_is_folding_once(text: str) -> None:
    assert fold_shouting(fold_shouting(text)) == fold_shouting(text)


@given(st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=9), min_size=1, max_size=8))
def test_a_shouted_title_folds_back_to_the_title(words: list[str]) -> None:
    assume(sum(map(len, words)) >= MIN_LETTERS)  # fewer letters cannot tell shouting from an acronym
    title = " ".join(w.capitalize() for w in words)
    assert fold_shouting(title.upper()) == title


@given(st.text(alphabet=st.sampled_from("abcdéxyz ,.-'0123"), max_size=60))
def test_text_without_capitals_is_unchanged(text: str) -> None:
    assert fold_shouting(text) == text
    assert prompt_text(text, "keep") == text


@given(st.one_of(TEXT, WORDY))
def test_keep_is_the_identity(text: str) -> None:
    assert prompt_text(text, "keep") == text


@pytest.mark.parametrize("text, expected", [
    ("STOCK PHOTO - ZORBLAX TOWER, A LARGE PURPLE HEXAGON", "Stock Photo - Zorblax Tower, A Large Purple Hexagon"),
    ("&QUOT;VELMORA COLA&QUOT; RED CIRCLE 🙂", "&Quot;Velmora Cola&Quot; Red Circle 🙂"),
    ("O'BRIEN'S PUB AT NIGHT", "O'brien's Pub At Night"),
    ("Stock Photo - NEW YORK CITY skyline", "Stock Photo - New York City skyline"),
    ("the USA flag on a pole", "the USA flag on a pole"),  # a lone acronym in a mixed text
    ("NASA photo. JPL image", "NASA photo. JPL image"),
    ("the Zorblax Tower logo", "the Zorblax Tower logo"),
    ("4K HD", "4K HD"),  # two letters outside codes: too few to tell shouting from acronyms
    ("HD 4K PHOTO", "Hd 4K Photo"),  # shouted: every upper-case word of two cased letters or more
    ("DSC03575.JPG", "DSC03575.JPG"),  # a camera's file name: codes are never folded
    ("AIRBUS A380 AT GATE 12", "Airbus A380 At Gate 12"),
    ("A B C", "A B C"),  # no word of two cased letters
    ("", ""),
])
def test_web_cases(text: str, expected: str) -> None:
    assert fold_shouting(text) == expected


def test_shouted_means_mostly_capitals() -> None:
    assert is_shouted("ZORBLAX TOWER")
    assert not is_shouted("Zorblax Tower")
    assert not is_shouted("ABC")  # too few letters to tell
    assert is_shouted("STOCK PHOTO ZORBLAX - tower")  # 17 of 22 letters
    assert not is_shouted("STOCK PHOTO - zorblax")  # 10 of 17


def test_the_captioner_reads_its_prompts_through_its_prompt_case(make_captioner) -> None:  # type: ignore[no-untyped-def]
    import torch

    keep = make_captioner("llama")
    fold = make_captioner("llama")
    fold.config = fold.config.model_copy(update={"prompt_case": "fold_shouting"})
    shouted, title = "ZORBLAX TOWER LOGO", "Zorblax Tower Logo"
    assert torch.equal(fold.batch([shouted]).text_ids, keep.batch([title]).text_ids)
    assert not torch.equal(keep.batch([shouted]).text_ids, keep.batch([title]).text_ids)
    # targets are never folded: the caption is written as the annotator wrote it
    assert torch.equal(fold.batch([""], ["ZORBLAX TOWER"]).text_ids, keep.batch([""], ["ZORBLAX TOWER"]).text_ids)


def test_the_prompt_case_is_saved_with_the_model(make_captioner, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from curate_captioner.model import Captioner

    captioner = make_captioner("llama")
    captioner.config = captioner.config.model_copy(update={"prompt_case": "fold_shouting"})
    captioner.save(tmp_path / "m")
    assert Captioner.load(tmp_path / "m").config.prompt_case == "fold_shouting"
