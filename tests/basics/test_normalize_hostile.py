"""normalize_text on alt-texts written to hurt it: escaping or tags nested 10^5 deep (each level took
a pass over the whole text: hours), floods of combining marks (CPython orders them by insertion),
decimal character references too long for ``int`` (html.unescape raised ValueError). Every row
finishes in bounded time: normalized as before, or dropped as ``text_nested_too_deep`` with its
text as it came."""

from __future__ import annotations

import html
import unicodedata

import polars as pl
from curate_basics.normalize import (
    MIN_ROUNDS,
    ROUND_WORK,
    TOO_NESTED,
    NormalizeParams,
    NormalizeText,
    TextTooNested,
    normalize_in_pieces,
    normalize_one,
    unescape,
)
from hypothesis import example, given
from hypothesis import strategies as st

from curate.testing import run_step
from tests.bounded import finishes
from tests.invariants import assert_nothing_lost

# Combining marks of several classes (U+0301: 230, U+0316: 220, U+0345: 240, U+0F71: 129), marks
# that decompose to marks (U+0344, U+0F73), Hangul jamo that compose, compatibility characters, and
# code points Python 3.11's unicodedata does not know (polars does).
UNICODE_PIECES = st.sampled_from([
    "a", "e", " ", "\u0301", "\u0316", "\u0345", "\u0f71", "\u0f72", "\u0344", "\u0f73", "\u00e9", "\u1e69",
    "\u1100", "\u1161", "\u11a8", "\uac00", "\ufb01", "\u2460", "\ufdfa", "\uff21", "\u0338", "<", "=",
    "\U0001ccd6", "\U00016d67", "\u0378", "\U000e01ef",
])


@given(st.lists(UNICODE_PIECES, max_size=40).map("".join), st.sampled_from(["NFC", "NFKC"]))
@example("a" + "\u0301\u0316" * 50 + "\U0001ccd6" + "\u0316\u0301" * 50, "NFC")
def test_normalizing_in_pieces_equals_unicodedata(text, form):
    assert normalize_in_pieces(form, text) == unicodedata.normalize(form, text)


@given(st.text(alphabet="0123456789", min_size=1, max_size=40), st.sampled_from(["", ";", "x", "9", " &#65;"]))
def test_unescape_equals_html_unescape(digits, tail):
    text = f"a&#{digits}{tail}&#x{digits}{tail}"
    assert unescape(text) == html.unescape(text)


def test_a_decimal_reference_too_long_for_int_is_past_unicode():
    assert unescape("&#" + "9" * 5000 + ";x") == "\ufffdx"
    assert unescape("&#" + "0" * 5000 + "65") == "A"
    assert unescape("&#" + "0" * 5000) == "\ufffd"  # U+0000


def test_a_long_text_with_a_code_point_python_does_not_know_takes_the_reference_path():
    params = NormalizeParams(unicode_form="NFKC")
    texts = ["\uff21 " * 40_000 + "\U0001ccd6", "\uff21 " * 40_000, "\U0001ccd6"]  # long and short
    out = NormalizeText(params).normalize(pl.Series(texts)).to_list()
    assert out == [normalize_one(text, params) for text in texts]
    assert out[0].endswith("A \U0001ccd6") and out[2] == "\U0001ccd6"  # polars alone would make it 'A'


def test_deep_nesting_is_followed_within_its_work_bound():
    params = NormalizeParams(strip_tags=True)
    assert normalize_one("&" + "amp;" * 1000 + "lt;b>x", params) == "x"  # within the bound: done as before
    assert normalize_one("<b" * 500 + ">" * 500 + "x", params) == "x"
    deep = "&" + "amp;" * 100_000 + "x"
    try:
        normalize_one(deep, params)
    except TextTooNested as exc:
        assert f"after {MIN_ROUNDS} rounds" in str(exc)
    else:
        raise AssertionError("a text escaped 10^5 times over was followed to its end")
    assert len(deep) * MIN_ROUNDS > ROUND_WORK  # why it stopped there


def test_hostile_rows_are_normalized_or_dropped_and_nothing_is_lost(pm, tmp_path):
    """A 10^5-deep chain and a tag nest are dropped as they came; a flood of combining marks and a
    long decimal reference are normalized; the other rows as by themselves."""
    normal = ["a &amp;amp; b", "<b>red</b> circle", "  plain  text ", "e\u0301 &eacute;", None, ""]
    hostile = ["&" + "amp;" * 100_000 + "x", "<b" * 100_000 + ">" * 100_000,
               "x&zz; " + "\u0301\u0316" * 50_000, "&#" + "7" * 6000 + "; &nope;"]
    texts = normal + hostile
    table = pl.DataFrame({"uid": [f"u{i}" for i in range(len(texts))], "alt_text": texts,
                          "title": ["t &amp; t"] * len(texts)})
    params = {"strip_tags": True, "columns": ["alt_text", "title"]}
    result = run_step("normalize_text", table, params, pm=pm, workdir=tmp_path)
    assert_nothing_lost(table, result)
    reference = NormalizeParams(**params)
    kept = dict(zip(result.kept["uid"], result.kept["alt_text"], strict=True))
    for uid, text in zip(table["uid"][:len(normal)], normal, strict=True):
        assert kept[uid] == normalize_one(text, reference)
    assert kept["u8"] == "x&zz; " + "\u0316" * 50_000 + "\u0301" * 50_000  # marks in canonical order
    assert kept["u9"] == "\ufffd &nope;"
    dropped = result.dropped.sort("uid")
    assert dropped["uid"].to_list() == ["u6", "u7"]
    assert dropped["_drop_reason"].to_list() == [TOO_NESTED] * 2
    assert dropped["alt_text"].to_list() == hostile[:2] and dropped["title"].to_list() == ["t &amp; t"] * 2


def test_normalizing_hostile_texts_finishes():
    """Each took minutes to hours or raised: 10^5 levels of escaping or of nested tags, a flood of
    6 x 10^5 combining marks of alternating classes (for the slow path's unicodedata), a
    reference of 10^4 digits (ValueError)."""
    finishes("""
        import polars as pl
        from curate_basics.normalize import NormalizeParams, NormalizeText
        step = NormalizeText(NormalizeParams(strip_tags=True))
        n = 100_000
        texts = ["&" + "amp;" * n + "x", "<b" * n + ">" * n, "x&zz; " + "\\u0301\\u0316" * 3 * n, "&#" + "7" * 10_000]
        out, nested = step.normalize_rows(pl.Series(texts))
        assert nested == [0, 1] and out[3] == "\\ufffd"
    """)
