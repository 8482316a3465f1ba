from __future__ import annotations

import polars as pl
import pytest
from curate_basics.normalize import NormalizeParams, NormalizeText, normalize_one
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from curate.testing import run_step
from curate.testing import strategies as cst
from tests.invariants import assert_nothing_lost, uids

PARAMS = st.builds(
    NormalizeParams,
    html_unescape=st.booleans(),
    strip_tags=st.booleans(),
    strip_control=st.booleans(),
    unicode_form=st.sampled_from(["NFC", "NFKC", "none"]),
    collapse_whitespace=st.booleans(),
    max_length=st.one_of(st.none(), st.integers(1, 40)),
)

# Inputs that broke the vectorized path or idempotence once, plus the usual suspects.
TRICKY = [
    "\uff06amp; fullwidth ampersand",  # NFKC turns it into an entity to unescape
    "&amp;" + "amp;" * 12 + "lt;b&gt;",  # escaped more often than a fixed number of passes undoes
    "a\x1cb\x1d c\x1e\x1f",  # separators: whitespace to Python's regex, not to polars'
    "x\U0001ccd6y \U00016d67\U00016d67",  # newer Unicode than Python's unicodedata knows
    "\u200b\ufeff zero width \u00a0 nbsp\u2028line",
    "e\u0301 vs \u00e9, \ufb01 ligature",
    "&#0; &#x110000; &#xd800; &nonsense; & alone &",
    "\x00\x7f\x85\x9f controls",
    '<span class="caption"><b>red</b> circle</span><br/> &lt;i&gt;escaped&lt;/i&gt;',
    "<<b>b>, <b<i>>, a < b > c, x<y, <1>, </>",
    "\uff1cb\uff1efullwidth\uff1c/b\uff1e",  # NFKC makes a tag of it
    # joiners kept, bidi controls and tags removed but in a flag, cut at a grapheme boundary
    "\U0001f468\u200d\U0001f469\u200d\U0001f467 \u0645\u06cc\u200c\u062e \u0915\u094d\u0937\u0924\u094d",
    "\u202egpj.exe\u2066 \U000e0069\U000e0067 \U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074"
    "\U000e007f",
    "\U0001f1ef\U0001f1f5\U0001f1e9\U0001f1ea \U0001f44b\U0001f3fd \u00ad&shy;&zwj;&#x202e;",
    "",
    None,
]
TAGGY = st.lists(st.sampled_from(["<", ">", "/", "b", "br", " ", "\t", "span class=x", "&lt;", "&gt;", "a",
                                  "\uff1c", "\x1c", "&amp;"]), max_size=16).map("".join)
TEXTS = st.lists(st.one_of(st.none(), cst.alt_texts(), st.sampled_from(TRICKY), TAGGY), min_size=1, max_size=12)


@settings(max_examples=200)
@given(texts=TEXTS, params=PARAMS)
@example(texts=TRICKY, params=NormalizeParams())
@example(texts=TRICKY, params=NormalizeParams(unicode_form="NFKC"))
@example(texts=TRICKY, params=NormalizeParams(strip_control=False))
@example(texts=TRICKY, params=NormalizeParams(unicode_form="NFKC", max_length=7))
@example(texts=TRICKY, params=NormalizeParams(unicode_form="NFKC", strip_tags=True))
def test_the_vectorized_path_equals_the_reference_on_every_input(texts, params):
    out = NormalizeText(params).normalize(pl.Series(texts, dtype=pl.Utf8)).to_list()
    assert out == [normalize_one(t, params) for t in texts]


@settings(max_examples=200)
@given(texts=TEXTS, params=PARAMS)
@example(texts=TRICKY, params=NormalizeParams())
@example(texts=TRICKY, params=NormalizeParams(unicode_form="NFKC", strip_tags=True))
def test_normalizing_twice_changes_nothing_more(texts, params):
    step = NormalizeText(params)
    once = step.normalize(pl.Series(texts, dtype=pl.Utf8))
    assert step.normalize(once).to_list() == once.to_list()
    assert [normalize_one(t, params) for t in once.to_list()] == once.to_list()


@given(text=cst.alt_texts(), params=PARAMS)
def test_the_result_is_clean(text, params):
    out = normalize_one(text, params)
    assert out is not None
    if params.max_length is not None:
        assert len(out) <= params.max_length
    if params.collapse_whitespace:
        assert out == out.strip() and "  " not in out
    if params.strip_control and params.collapse_whitespace:
        assert not any(c in out for c in "\x00\x0b\u200b\ufeff\t\n")
    if params.strip_tags:
        from curate_basics.normalize import TAG_RE

        assert TAG_RE.search(out) is None


def test_tags_are_stripped_and_what_only_looks_like_one_stays():
    params = NormalizeParams(strip_tags=True)
    assert normalize_one('<p><span class="caption">Red <b>circle</b></span><br/></p>', params) == "Red circle"
    assert normalize_one("&lt;b&gt;escaped&lt;/b&gt; too", params) == "escaped too"
    assert normalize_one("a < b > c, x<y, 3<4>2", params) == "a < b > c, x<y, 3<4>2"
    assert normalize_one("<b>kept</b>", NormalizeParams()) == "<b>kept</b>"  # off by default


def test_huge_texts_are_normalized_and_bounded():
    huge = ("word &amp; \u200bword\t" * 20_000) + "end"
    params = NormalizeParams(max_length=1000)
    out = NormalizeText(params).normalize(pl.Series([huge, "short"])).to_list()
    assert out == [normalize_one(huge, params), "short"]
    assert len(out[0]) == 1000 and "&" in out[0] and "\u200b" not in out[0]


@given(table=cst.tables(max_rows=25), min_length=st.integers(0, 6),
       empty=st.sampled_from(["keep", "null", "drop"]))
def test_dropping_short_or_empty_texts_loses_nothing(pm, tmp_path, table, min_length, empty):
    params = {"min_length": min_length, "empty": empty}
    result = run_step("normalize_text", table, params, pm=pm, shard_size=10, workdir=tmp_path)
    assert_nothing_lost(table, result)
    reference = NormalizeParams(**params)
    by_uid = dict(zip(uids(table), table["alt_text"].to_list()))
    for uid, text in zip(uids(result.kept), result.kept["alt_text"].to_list()):
        expected = normalize_one(by_uid[uid], reference)
        if empty == "null" and expected == "":
            expected = None
        assert text == expected
        if min_length:
            assert text is not None and len(text) >= min_length
        if empty == "drop":
            assert text  # neither empty nor NULL
    assert set(result.drop_reasons) <= {"empty_text", "text_too_short"}


def test_several_columns_are_normalized(pm):
    table = pl.DataFrame({"uid": ["a"], "url": ["u"], "alt_text": ["a &amp; b"], "title": ["  T\u00a0 x "]})
    result = run_step("normalize_text", table, {"columns": ["alt_text", "title"]}, pm=pm)
    assert result.kept.row(0, named=True) == {"uid": "a", "url": "u", "alt_text": "a & b", "title": "T x"}


def test_min_length_above_max_length_is_rejected():
    with pytest.raises(ValidationError, match="greater than max_length"):
        NormalizeParams(min_length=10, max_length=5)


# Pieces the vectorized unescape handles (the common entities, escaped once or more) next to
# pieces it must leave to html.unescape (other entities, a bare '&', no ';'), whitespace,
# controls and text NFC/NFKC change, in any order.
ENTITY_PIECES = st.sampled_from([
    "&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&nbsp;", "&#39;", "&#039;", "&#x27;", "&#34;",
    "&amp;amp;", "&amp;lt;b&amp;gt;", "&amp;nbsp;", "&AMP;", "&eacute;", "&#8217;", "&amp", "&lt",
    "AT&T", "&", ";", "amp;", "#39;", " & ", "&T#", "&T;", "&<", "&#", "&#x", "&&", "\n&\f",
    " ", "  ", "\t", "\xa0", "\x00", "\u200b", "e\u0301", "\uff06",
    "x", "word", "日本",
])


@settings(max_examples=300)
@given(pieces=st.lists(st.lists(ENTITY_PIECES, max_size=8).map("".join), min_size=1, max_size=8), params=PARAMS)
def test_vectorized_entity_unescaping_equals_html_unescape(pieces, params):
    out = NormalizeText(params).normalize(pl.Series(pieces, dtype=pl.Utf8)).to_list()
    assert out == [normalize_one(t, params) for t in pieces]
