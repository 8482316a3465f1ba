"""strip_boilerplate's ``keywords: true``: a trailing list of search keywords goes, the description stays."""

from __future__ import annotations

import polars as pl
import pytest
from curate_basics.boilerplate import StripBoilerplate, StripParams
from curate_basics.keywords import SEO_WORDS, strip_keywords, strip_keywords_series
from hypothesis import example, given
from hypothesis import strategies as st

from curate.testing import run_step
from tests.invariants import assert_nothing_lost

EXAMPLES = [
    ("an orange triangle, download, art, cheap, simple, abstract, png, hd", "an orange triangle"),
    # a word the description said, repeated in the list, goes with it
    ("An orange box, flat, abstract, symbol, orange, free", "An orange box"),
    ("A Brown Circle, Brown, Transparent, Abstract, Geometric \U0001f44d", "A Brown Circle"),
    ("A small brown star on the left, free, download, art, flat, shapes, brown", "A small brown star on the left"),
    # separated by spaces; a word between two keywords is one of them
    ("an ebony hex design best hd black flat simple graphic free", "an ebony hex"),
    ("a red circle | vector, clipart, free download", "a red circle"),
    ("a red circle, royalty free, hd", "a red circle"),
    ("a star, a square & a diamond, free, geometric, 2024, symbol, hd, modern", "a star, a square & a diamond"),
    # a name the text said, repeated as an item; repeated words after a keyword; one word last in a list
    ("Halvendor Lighthouse, red shapes | isolated | graphic | art | halvendor lighthouse | template",
     "Halvendor Lighthouse, red shapes"),
    ("an orange heart and the Zorblax Tower logo modern hd orange zorblax tower png",
     "an orange heart and the Zorblax Tower logo"),
    ("A SMALL BLUE TRIANGLE DOWNLOAD HD PNG BLUE", "A SMALL BLUE TRIANGLE"),
    ("a crimson triangle | stock image, png, flat, brown, modern, best, free, red", "a crimson triangle"),
    # in quotes, the quotes stay
    ("'Three yellow hexagons, flat, design, symbol, transparent'", "'Three yellow hexagons'"),
    # the last keyword cut short, with or without an ellipsis
    ("two red circles isolated png best s…", "two red circles"),
    ("two red circles, free, hd, transp", "two red circles"),
    # left as they are: one keyword, a description's own words, a text of keywords only
    ("a red circle, free", "a red circle, free"),
    ("three red shapes free hd", "three red shapes"),
    ("a red square and a red square free hd", "a red square and a red square"),
    ("a red circle and a blue square", "a red circle and a blue square"),
    ("free hd png", "free hd png"),
    ("a red circle. Free, HD", "a red circle. Free, HD"),  # after a full stop: a sentence of its own
    ("a red circle (free, hd)", "a red circle (free, hd)"),
    ("a red circle and a red circle, red circle", "a red circle and a red circle, red circle"),
    ("'a', free, hd", "'a', free, hd"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), EXAMPLES)
def test_the_examples(text, expected):
    assert strip_keywords(text) == expected


KEYWORDS = st.sampled_from(sorted(SEO_WORDS))
# Description words: neither keywords nor the start of one (a cut keyword at the end is a keyword)
PLAIN = st.sampled_from(["circle", "red", "square", "kitten", "mountain", "zebra", "quartz", "violet", "yellow"])


@given(description=st.lists(PLAIN, min_size=1, max_size=8), keywords=st.lists(KEYWORDS, min_size=2, max_size=8),
       separator=st.sampled_from([", ", " ", " | ", "; ", ",", " / "]), first=st.sampled_from([", ", " ", " | "]))
@example(description=["circle"], keywords=["free", "hd"], separator=" ", first=" ")
def test_a_keyword_list_after_a_description_goes_and_the_description_stays(description, keywords, separator, first):
    text = " ".join(description)
    assert strip_keywords(text + first + separator.join(keywords)) == text


@given(text=st.text(max_size=80))
@example(text="a, free, hd, a, free, hd")
def test_only_a_tail_goes_and_never_the_first_word(text):
    out = strip_keywords(text)
    assert text.startswith(out)
    if out != text:
        assert out.strip() and len(out) < len(text)


@given(words=st.lists(PLAIN, max_size=10), separator=st.sampled_from([" ", ", "]))
def test_a_text_without_keywords_is_left_alone(words, separator):
    text = separator.join(words)
    assert strip_keywords(text) == text


@given(texts=st.lists(st.one_of(st.none(), st.text(max_size=40), st.lists(st.one_of(KEYWORDS, PLAIN, st.sampled_from(
    [",", " ", "…", "-", "'", "2024", "s", "clip-art", "Free", "HD", "\U0001f525", "_", "\u2764\ufe0f", ", red", "high",
     "quality"])), max_size=10).map(" ".join)),
    max_size=20))
@example(texts=["a red circle, free, royalty-free", "x's best hd png's", "a b, hd, 1999", None,
                "a red cross, flat, free, red \U0001f60d\U0001f44d", "two stars | stock image \u2764\ufe0f",
                "A Red Cross, Free, HD, RED", "a b, high quality, no background, x"])
def test_the_series_reads_in_python_every_text_a_keyword_list_ends(texts):
    """Texts with fewer than two keywords are skipped; nothing is missed by that."""
    series = pl.Series(texts, dtype=pl.Utf8)
    assert strip_keywords_series(series).to_list() == [None if t is None else strip_keywords(t) for t in texts]
    assert series.to_list() == texts  # the input is not changed in place


def test_the_step_strips_keywords_only_when_asked(pm):
    texts = ["a red circle, free, download, png", "a cat", None]
    table = pl.DataFrame({"uid": ["u0", "u1", "u2"], "url": ["https://a/0", "https://a/1", "https://a/2"],
                          "alt_text": pl.Series(texts, dtype=pl.Utf8)})
    asked = run_step("strip_boilerplate", table, {"keywords": True}, pm=pm)
    assert asked.kept["alt_text"].to_list() == ["a red circle", "a cat", None]
    assert_nothing_lost(table, asked)
    assert run_step("strip_boilerplate", table, pm=pm).kept["alt_text"].to_list() == texts
    assert StripBoilerplate(StripParams()).params.keywords is False
