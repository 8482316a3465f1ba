"""Prompt rewrites (curate_captioner.rewrite): properties over any text, the web's cases, and the
captioner reading its prompts through the rewrites its config names."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from curate_captioner.rewrite import MIN_LETTERS, file_name_words, fold_shouting, is_shouted, rewrite_prompt

TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)
WORDY = st.text(alphabet=st.sampled_from("abcXYZ ÄÖéÉİıßẞ'’-,.4_()"), max_size=60)
LOWER_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=9)
ANY = st.one_of(TEXT, WORDY)


@given(ANY)
def test_folding_only_lowers_letters(text: str) -> None:
    folded = fold_shouting(text)
    assert len(folded) == len(text)
    for before, after in zip(text, folded, strict=True):
        assert after == before or after == before.lower()


@given(ANY)
def test_folding_twice_is_folding_once(text: str) -> None:
    assert fold_shouting(fold_shouting(text)) == fold_shouting(text)


@given(st.lists(LOWER_WORD, min_size=1, max_size=8))
def test_a_shouted_title_folds_back_to_the_title(words: list[str]) -> None:
    assume(sum(map(len, words)) >= MIN_LETTERS)  # fewer letters cannot tell shouting from an acronym
    title = " ".join(w.capitalize() for w in words)
    assert fold_shouting(title.upper()) == title


@given(st.text(alphabet=st.sampled_from("abcdéxyz ,.'0123"), max_size=60))
def test_text_without_capitals_separators_or_extensions_is_unchanged(text: str) -> None:
    assert rewrite_prompt(text, ["file_names", "fold_shouting"]) == text


@given(ANY)
def test_no_rewrites_is_the_identity(text: str) -> None:
    assert rewrite_prompt(text, []) == text


@given(ANY)
def test_file_names_only_touch_separators_extensions_and_case(text: str) -> None:
    """Reading a file name as words replaces - and _ by spaces, drops an image extension and
    capitalises: the text's letters and digits, lower-cased, are otherwise the same."""
    def kept(value: str) -> str:
        return re.sub(r"[\W_]+", "", re.sub(r"\.(jpe?g|png|gif|webp|avif|bmp|tiff?)\b", "", value, flags=re.I)).lower()

    assert kept(file_name_words(text)) == kept(text)


@given(ANY)
def test_file_names_twice_is_once(text: str) -> None:
    assert file_name_words(file_name_words(text)) == file_name_words(text)


@given(st.lists(LOWER_WORD, min_size=2, max_size=7), st.sampled_from(["-", "_"]),
       st.sampled_from(["jpg", "JPG", "jpeg", "png", "webp"]))
def test_a_file_name_reads_as_its_capitalised_words(words: list[str], separator: str, extension: str) -> None:
    name = separator.join(words) + "." + extension
    expected = " ".join(w.capitalize() for w in words)
    assert file_name_words(name) == expected
    assert file_name_words(f"photo: {name}, 2024") == f"photo: {expected}, 2024"


@pytest.mark.parametrize("text, expected", [
    ("STOCK PHOTO - ZORBLAX TOWER, A LARGE PURPLE HEXAGON", "Stock Photo - Zorblax Tower, A Large Purple Hexagon"),
    ("&QUOT;VELMORA COLA&QUOT; RED CIRCLE 🙂", "&Quot;Velmora Cola&Quot; Red Circle 🙂"),
    ("O'BRIEN'S PUB AT NIGHT", "O'brien's Pub At Night"),
    ("Stock Photo - NEW YORK CITY skyline", "Stock Photo - New York City skyline"),
    ("the USA flag on a pole", "the USA flag on a pole"),  # a lone acronym in a mixed text
    ("NASA photo. JPL image", "NASA photo. JPL image"),
    ("the Zorblax Tower logo", "the Zorblax Tower logo"),
    ("4K HD", "4K HD"),  # two letters outside codes: too few to tell shouting from acronyms
    ("HD 4K PHOTO", "Hd 4K Photo"),  # shouted: every upper-case word outside codes
    ("DSC03575.JPG", "DSC03575.JPG"),  # codes are never folded
    ("(PXL_4527.JPG)", "(PXL_4527.JPG)"),
    ("AIRBUS A380 AT GATE 12", "Airbus A380 At Gate 12"),
    ("A B C", "A B C"),  # no word of two cased letters
    ("", ""),
])
def test_shouting(text: str, expected: str) -> None:
    assert fold_shouting(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("pemberly-bridge.jpg", "Pemberly Bridge"),
    ("yontab_stadium_striped_black_background_final.webp", "Yontab Stadium Striped Black Background Final"),
    ("zorblax_tower_purple_hexagon-1.webp", "Zorblax Tower Purple Hexagon 1"),
    ("a photo: velmora-cola-logo.png, red", "a photo: Velmora Cola Logo, red"),
    ('"zorblax_tower_logo"', '"Zorblax Tower Logo"'),  # three words joined by _, no extension
    ("light-blue-circles", "Light Blue Circles"),  # the whole alt-text is a slug
    ("a state-of-the-art red circle", "a state-of-the-art red circle"),  # hyphenated words in a sentence
    ("top-left", "top-left"),
    ("IMG_0012.jpg", "IMG_0012.jpg"),  # a camera's code
    ("visit Wexhollow Abbey (image7815.JPG)", "visit Wexhollow Abbey (image7815.JPG)"),
])
def test_file_names(text: str, expected: str) -> None:
    assert file_name_words(text) == expected


def test_every_rewrite_a_config_may_name_exists() -> None:
    from typing import get_args

    from curate_captioner.rewrite import REWRITES, PromptRewrite

    assert set(get_args(PromptRewrite)) == set(REWRITES)


def test_rewrites_apply_in_order() -> None:
    assert rewrite_prompt("FENNIMORE_GATE_STAR.JPG", ["file_names", "fold_shouting"]) == "Fennimore Gate Star"
    assert rewrite_prompt("FENNIMORE_GATE_STAR.JPG", ["fold_shouting"]) == "Fennimore_Gate_Star.Jpg"


def test_shouted_means_mostly_capitals() -> None:
    assert is_shouted("ZORBLAX TOWER")
    assert not is_shouted("Zorblax Tower")
    assert not is_shouted("ABC")  # too few letters to tell
    assert is_shouted("STOCK PHOTO ZORBLAX - tower")  # 17 of 22 letters
    assert not is_shouted("STOCK PHOTO - zorblax")  # 10 of 17


def test_the_captioner_reads_its_prompts_through_its_rewrites(make_captioner) -> None:  # type: ignore[no-untyped-def]
    import torch

    plain = make_captioner("llama")
    rewriting = make_captioner("llama")
    rewriting.config = rewriting.config.model_copy(update={"prompt_rewrites": ["file_names", "fold_shouting"]})
    for web, read in (("ZORBLAX TOWER LOGO", "Zorblax Tower Logo"), ("zorblax-tower-logo.jpg", "Zorblax Tower Logo")):
        assert torch.equal(rewriting.batch([web]).text_ids, plain.batch([read]).text_ids)
        assert not torch.equal(plain.batch([web]).text_ids, plain.batch([read]).text_ids)
    # targets are never rewritten: the caption is written as the annotator wrote it
    assert torch.equal(rewriting.batch([""], ["ZORBLAX TOWER"]).text_ids, plain.batch([""], ["ZORBLAX TOWER"]).text_ids)


def test_a_huge_alt_text_is_read_as_far_as_its_prompt_can_reach(make_captioner) -> None:  # type: ignore[no-untyped-def]
    """A 10 MB alt-text was rewritten and tokenized whole (25 s a row) for its first 128 tokens."""
    import tracemalloc

    import torch

    from curate_captioner.prompts import prompt_chars

    captioner = make_captioner("llama")
    captioner.config = captioner.config.model_copy(update={"prompt_rewrites": ["file_names", "fold_shouting"]})
    huge = "A RED Circle and a-blue-star.jpg " * 300_000
    tracemalloc.start()
    try:
        ids = captioner.batch([huge]).text_ids
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert torch.equal(ids, captioner.batch([huge[:prompt_chars(captioner.config.max_prompt_tokens)]]).text_ids)
    assert peak < 32 * 2**20


def test_the_rewrites_are_saved_with_the_model(make_captioner, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from curate_captioner.model import Captioner

    captioner = make_captioner("llama")
    captioner.config = captioner.config.model_copy(update={"prompt_rewrites": ["fold_shouting"]})
    captioner.save(tmp_path / "m")
    assert Captioner.load(tmp_path / "m").config.prompt_rewrites == ["fold_shouting"]
