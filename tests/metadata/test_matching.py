"""MetaCLIP's matching rule, and the Aho-Corasick matcher against the plain loop."""

from __future__ import annotations

import polars as pl
from curate_metadata.matching import Matcher, matchable, padded, reference_match, spacing, spacing_expr
from hypothesis import given
from hypothesis import strategies as st

# Few letters, MetaCLIP's punctuation, line breaks and a CJK character: entries and texts collide often.
ALPHABET = "abAB .,!?:;`\t\n-'中"
texts = st.text(alphabet=ALPHABET, max_size=40)
entries = st.lists(st.text(alphabet=ALPHABET, min_size=1, max_size=6).filter(str.strip), min_size=1, max_size=12)


def match(entries_, text, **options):
    return Matcher(entries_, **options).match(matchable(text, options.get("ignore_case", False)))


def test_entries_match_as_whole_words_after_metaclip_spacing():
    entries_ = ["red", "red circle", "circle", "A"]
    assert match(entries_, "A red circle.") == [0, 1, 2, 3]
    assert match(entries_, "redwood circles") == []
    assert match(entries_, "red\ncircle") == [0, 1, 2]  # a line break is a space
    assert match(entries_, "red  circle") == [0, 2]  # two spaces: the phrase is not there
    assert match(entries_, "(red)") == []  # brackets are not wrapped in spaces by MetaCLIP


def test_matching_is_case_sensitive_unless_asked():
    assert match(["red"], "Red circle") == []
    assert match(["red"], "Red circle", ignore_case=True) == [0]
    assert match(["Velmora Cola"], "velmora cola logo", ignore_case=True) == [0]


def test_v2_needs_no_space_beside_cjk():
    assert padded("中国", "v1") == " 中国 " and padded("中国", "v2") == "中国"
    assert match(["中国"], "我爱中国人") == []
    assert match(["中国"], "我爱中国人", boundary="v2") == [0]
    assert match(["C++"], "I like C++.", boundary="v2") == [0]


def test_an_entry_listed_twice_matches_with_both_ids():
    assert match(["red", "blue", "red"], "a red one") == [0, 2]
    assert match(["Red", "red"], "a RED one", ignore_case=True) == [0, 1]


@given(text=texts)
def test_polars_spacing_is_metaclips_spacing(text):
    assert pl.select(spacing_expr(pl.lit(text))).item() == spacing(text)


@given(entries_=entries, text=texts, ignore_case=st.booleans(), boundary=st.sampled_from(["v1", "v2"]))
def test_the_automaton_agrees_with_the_plain_loop(entries_, text, ignore_case, boundary):
    matcher = Matcher(entries_, ignore_case=ignore_case, boundary=boundary)
    expected = reference_match(text, entries_, ignore_case=ignore_case, boundary=boundary)
    assert matcher.match(matchable(text, ignore_case)) == expected


@given(data=st.data(), entries_=entries, text=texts)
def test_a_text_is_matched_only_against_entries_of_its_language(data, entries_, text):
    languages = [data.draw(st.sampled_from(["en", "de", None])) for _ in entries_]
    language = data.draw(st.sampled_from(["en", "de", "fr", None]))
    matcher = Matcher(entries_, languages)
    assert matcher.match(matchable(text), language) == reference_match(text, entries_, languages, language)
