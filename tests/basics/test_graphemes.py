"""curate_basics.graphemes: the cut keeps whole grapheme clusters, the clusters of the ``regex``
module's ``\\X`` (extended grapheme clusters, UAX #29), without needing ``regex`` at run time."""

from __future__ import annotations

import pytest
from curate_basics.grapheme_table import RANGES
from curate_basics.graphemes import HANGUL_FIRST, HANGUL_LAST, LV, LVT, char_class, cut, is_boundary
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.bounded import finishes

# Characters of every cluster class: controls, CR LF, marks, joiners, regional indicators, emoji
# and modifiers, tags, Hangul jamo and syllables, prepend marks, spacing marks, Indic consonants
# and linkers (viramas) of several scripts, a lone surrogate.
PIECES = st.sampled_from([
    "a", " ", "\r", "\n", "\x00", "\u0301", "\u200d", "\u200c", "\U0001f1ef", "\U0001f1f5", "\U0001f469",
    "\U0001f4bb", "\U0001f3fd", "\u00a9", "\ufe0f", "\U000e0067", "\U000e007f", "\U0001f3f4", "\u0600",
    "\u0d4e",
    "\u0903", "\u0e33", "\u1100", "\u1161", "\u11a8", "\uac00", "\uac01", "\u0915", "\u094d", "\u0937",
    "\u0995", "\u09cd", "\u17d2", "\u1780", "\u1cf5", "\u0e3a", "\u0dca", "\u0dbb", "\ud800", "\u0378",
])
TEXTS = st.one_of(st.lists(PIECES, max_size=12).map("".join), st.text(max_size=12))


def test_the_table_is_the_regex_modules_unicode_data():
    pytest.importorskip("regex")
    from tests.basics.grapheme_table_make import ranges, regex_classes

    classes = regex_classes()
    # Fails when regex brings other Unicode data: write the table again (tests/basics/grapheme_table_make.py).
    assert tuple(ranges(classes)) == RANGES
    assert [char_class(chr(c)) for c in range(HANGUL_FIRST, HANGUL_LAST + 1)] == [
        classes[c] for c in range(HANGUL_FIRST, HANGUL_LAST + 1)]
    assert {char_class(chr(c)) for c in range(HANGUL_FIRST, HANGUL_LAST + 1)} == {LV, LVT}


def test_ascii_characters_break_everywhere_but_within_cr_lf():
    """What the vectorized path of normalize_text relies on to cut ASCII pairs without Python."""
    for left in range(128):
        for right in range(128):
            assert is_boundary(chr(left) + chr(right), 1) == ((left, right) != (13, 10))


@settings(max_examples=500)
@given(text=TEXTS)
@example(text="\u0915\u0903\u094d\u0937")  # a spacing mark before the virama: regex joins the conjunct
@example(text="\U0001f1ef\U0001f1f5\U0001f1e9\U0001f1ea\U0001f1eb")
def test_boundaries_are_the_regex_modules(text):
    regex = pytest.importorskip("regex")
    ends, end = set(), 0
    for cluster in regex.findall(r"\X", text):
        end += len(cluster)
        ends.add(end)
    assert {at for at in range(1, len(text)) if is_boundary(text, at)} == ends - {len(text)}


@settings(max_examples=500)
@given(text=TEXTS, length=st.integers(0, 14))
def test_the_cut_is_the_longest_prefix_of_whole_clusters(text, length):
    regex = pytest.importorskip("regex")
    out = cut(text, length)
    assert text.startswith(out) and len(out) <= length
    clusters = regex.findall(r"\X", text)
    whole = [sum(map(len, clusters[:k])) for k in range(len(clusters) + 1)]
    assert len(out) == max(n for n in whole if n <= length)


@pytest.mark.parametrize(("text", "length", "expected"), [
    ("\U0001f1ef\U0001f1f5\U0001f1e9\U0001f1ea", 3, "\U0001f1ef\U0001f1f5"),
    ("\U0001f44b\U0001f3fd", 1, ""),
    ("\U0001f44b\U0001f3fd hi", 2, "\U0001f44b\U0001f3fd"),
    ("\U0001f469\u200d\U0001f4bb\U0001f469", 3, "\U0001f469\u200d\U0001f4bb"),
    ("\u0915\u094d\u0937\u0924", 2, ""),
    ("\u0915\u094d\u200c\u0937", 3, "\u0915\u094d\u200c"),  # ZWNJ: no conjunct
    ("\u1100\u1161\u11a8\u1100", 2, ""),
    ("\u0600\u0661\u0662", 1, ""),  # the number sign spans the digit after it
    ("ab", 5, "ab"),
])
def test_cut_examples(text, length, expected):
    assert cut(text, length) == expected


def test_cutting_one_huge_cluster_takes_linear_time():
    finishes("""
        from curate_basics.graphemes import cut
        n = 100_000
        assert cut("a" + "\\u0301" * n, n) == ""
        assert cut("\\U0001f1ef" * n + "x", n) == "\\U0001f1ef" * n
        assert cut("\\U0001f1ef" * n + "x", n - 1) == "\\U0001f1ef" * (n - 2)
        assert cut("\\u0915\\u094d" * n + "\\u0915", 2 * n) == ""
        assert cut("\\U0001f469" + "\\u0301" * n + "\\u200d\\U0001f4bb", n + 2) == ""
    """)
