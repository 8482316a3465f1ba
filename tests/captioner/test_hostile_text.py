"""Prompt rewrites and ranked pairs read alt-texts that strangers wrote: their cost grows linearly
with the text, whatever it holds, and they give what the plain definitions give."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from curate_captioner.ranked import alt_text_names
from curate_captioner.rewrite import _CODE, _code_spans, _words_outside_codes
from tests.bounded import finishes

CODE_TEXT = st.text(alphabet=st.sampled_from("aZ9 ([)]\"'\t_-.é4"), max_size=80)


@given(CODE_TEXT)
def test_code_spans_are_the_code_patterns_matches(text: str) -> None:
    assert _code_spans(text) == [m.span() for m in _CODE.finditer(text)]


@given(CODE_TEXT)
def test_words_outside_codes_are_those_no_code_holds(text: str) -> None:
    codes = [m.span() for m in _CODE.finditer(text)]
    expected = [m.span() for m in re.finditer(r"[^\W_]+(?:['’][^\W_]+)*", text)
                if not any(start <= m.start() < end for start, end in codes)]
    assert [m.span() for m in _words_outside_codes(text)] == expected


def test_the_first_word_is_a_name_only_when_it_recurs() -> None:
    assert alt_text_names("Zorblax Tower by Zorblax") == {"Zorblax", "Tower"}
    assert alt_text_names("Photo of the Zorblax Tower") == {"Zorblax", "Tower"}
    assert alt_text_names("Photo Photo") == {"Photo"}


def test_rewrites_and_names_of_huge_hostile_alt_texts_finish() -> None:
    """Each input took minutes (the code pattern tried every start in a run without a digit; each
    word was checked against every code; the first word was counted once per word)."""
    finishes("""
        from curate_captioner.ranked import alt_text_names
        from curate_captioner.rewrite import file_name_words, fold_shouting, rewrite_prompt
        n = 100_000
        assert fold_shouting("X" * n) == "X" + "x" * (n - 1)  # one shouted word, no digit
        assert fold_shouting("A1 BC " * (n // 6)) == "A1 Bc " * (n // 6)  # a code before each word
        assert rewrite_prompt("(" + "x-" * n + ".jpgx", ["file_names", "fold_shouting"]).startswith("(x-x-")
        assert alt_text_names("Foo " * 250_000) == {"Foo"}
    """)
