"""The one "did you mean" helper: same answers as difflib's default fuzzy match."""

import difflib

from hypothesis import given
from hypothesis import strategies as st

from curate.suggest import closest, did_you_mean

words = st.text(alphabet="abcdefg_", min_size=0, max_size=8)


@given(words, st.lists(words, max_size=8), st.integers(1, 3))
def test_closest_is_difflibs_default_match(word, choices, n):
    assert closest(word, choices, n=n) == difflib.get_close_matches(word, choices, n=n)
    assert closest(word, iter(choices), n=n) == closest(word, choices, n=n)


@given(words, st.lists(words, max_size=8))
def test_did_you_mean_names_the_closest_or_falls_back(word, choices):
    close = difflib.get_close_matches(word, choices, n=1)
    expected = f"did you mean '{close[0]}'?" if close else "fallback"
    assert did_you_mean(word, choices, "fallback") == expected
    assert did_you_mean(word, choices) == (expected if close else None)


def test_did_you_mean_wording():
    assert did_you_mean("filtr", ["filter", "sample"]) == "did you mean 'filter'?"
    assert did_you_mean("zzz", {"filter": 1}, "labels: filter") == "labels: filter"


def test_a_suggestion_that_differs_by_a_character_that_does_not_show_says_so():
    assert did_you_mean("alt_text", ["url", "alt_text\u200b"]) == (
        "did you mean 'alt_text\\u200b', which holds U+200B ZERO WIDTH SPACE (not shown where it is printed)?")
