"""normalize_text on text in every script: ``strip_control`` keeps the joiners that spell Persian
and Indic words and join emoji, and removes the invisible characters that hide or reorder text
(curate_basics.invisible); ``max_length`` never cuts inside a grapheme cluster."""

from __future__ import annotations

import unicodedata

import polars as pl
import pytest
from curate_basics.normalize import NormalizeParams, NormalizeText, normalize_one
from hypothesis import example, given, settings
from hypothesis import strategies as st

from curate.testing import run_step

SCOTLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"
ENGLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
TECHNOLOGIST = "\U0001f469\u200d\U0001f4bb"
PERSIAN = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # mi-khaham: ZWNJ after the prefix
SINHALA = "\u0dc1\u0dca\u200d\u0dbb\u0dd3"  # Sri: the ZWJ makes the repaya
HIDDEN = "\U000e0069\U000e0067\U000e006e\U000e006f\U000e0072\U000e0065"  # "ignore" in tag characters

# Pieces of text in many scripts, emoji sequences, and every kind of invisible character.
SCRIPT_PIECES = st.sampled_from([
    FAMILY, TECHNOLOGIST, "\U0001f3f3\ufe0f\u200d\U0001f308", "\U0001f44b\U0001f3fd", "\u2764\ufe0f",
    "\U0001f1ef\U0001f1f5", "\U0001f1e9", "\U0001f1ea", SCOTLAND, SCOTLAND[:3], SCOTLAND[3:], "\U0001f3f4",
    "\U000e0067", "\U000e007f", "\U000e0001", "\U000e0020", "\U000e0031", HIDDEN,
    PERSIAN, SINHALA, "\u0915\u094d\u0937", "\u0928\u092e\u0938\u094d\u0924\u0947", "\u0995\u09cd\u200d",
    "\u094d", "\u0301", "e\u0301", "\u1100\u1161\u11a8", "\uac00", "\u0e19\u0e49", "\u0600\u0661",
    "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u061c", "\u00ad", "\u2060", "\u2062", "\ufeff",
    "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u206a",
    "\ufff9", "\u180e", "\U00013430", "\U0001d173",
    "&zwj;", "&zwnj;", "&shy;", "&#x202e;", "&lrm;", "&amp;", "\r\n", "\r", "\n", " ", "  ", "\xa0",
    "\x00", "\x85", "a", "word", "\u65e5\u672c", "\uff21",
])
SCRIPT_TEXTS = st.lists(st.lists(SCRIPT_PIECES, max_size=10).map("".join), min_size=1, max_size=8)
PARAMS = st.builds(
    NormalizeParams,
    html_unescape=st.booleans(),
    strip_control=st.booleans(),
    unicode_form=st.sampled_from(["NFC", "NFKC", "none"]),
    collapse_whitespace=st.booleans(),
    max_length=st.one_of(st.none(), st.integers(1, 30)),
)
STRIPPED = NormalizeParams()
# The format characters strip_control keeps (curate_basics.invisible says why).
KEPT = {0x200C, 0x200D, 0x200E, 0x200F, 0x061C, 0x180E, *range(0x0600, 0x0606), 0x06DD, 0x070F, 0x0890,
        0x0891, 0x08E2, 0x110BD, 0x110CD, *range(0x13430, 0x13440), *range(0x1BCA0, 0x1BCA4),
        *range(0x1D173, 0x1D17B)}
JOINERS = "\u200c\u200d"


def test_the_joiners_stay():
    for text in (f"family {FAMILY} at the beach", TECHNOLOGIST, PERSIAN, SINHALA, "\u0915\u094d\u200d\u0937"):
        assert normalize_one(text, STRIPPED) == text
        assert NormalizeText(STRIPPED).normalize(pl.Series([text])).to_list() == [text]


def test_invisible_characters_that_hide_or_reorder_text_go():
    cases = {
        "invoice \u202egpj.exe": "invoice gpj.exe",
        "\u2066a\u2069 \u2067b\u2069 \u2068c\u2069 \u202ad\u202c \u202be\u202c \u202df\u202c": "a b c d e f",
        f"please {HIDDEN}help": "please help",
        "zero\u200bwidth\u2060joiner\ufeff": "zerowidthjoiner",
        "Ver\u00adsiche\u00adrung": "Versicherung",
        "f\u2061(x) 2\u2062x \u206ax\ufff9y\ufffaz\ufffb": "f(x) 2x xyz",
        "\U000e0001\U000e0065\U000e006en lang tag": "n lang tag",
        "a\x00b\x1bc\x85d": "a b c d",
    }
    step = NormalizeText(STRIPPED)
    assert step.normalize(pl.Series(list(cases))).to_list() == list(cases.values())
    assert [normalize_one(text, STRIPPED) for text in cases] == list(cases.values())


def test_emoji_tag_sequences_keep_their_tags_and_other_tags_go():
    texts = {
        f"flag {SCOTLAND}": f"flag {SCOTLAND}",
        f"{ENGLAND} x": f"{ENGLAND} x",
        "\U0001f3f4\U000e0075\U000e0073\U000e0074\U000e0078\U000e007f": "\U0001f3f4",  # US-TX
        f"\U0001f3f4{HIDDEN}\U000e007f": "\U0001f3f4",  # text hidden in a flag
        f"{SCOTLAND[1:]}": "",  # tags without their flag
        f"\U0001f3f4\u200b{SCOTLAND[1:]}": "\U0001f3f4",
        f"x{SCOTLAND[:-1]}": "x\U0001f3f4",  # no cancel tag
    }
    step = NormalizeText(STRIPPED)
    assert step.normalize(pl.Series(list(texts))).to_list() == list(texts.values())
    assert [normalize_one(text, STRIPPED) for text in texts] == list(texts.values())


def test_which_format_characters_are_kept_is_the_documented_list():
    format_characters = [c for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf"]
    for code in format_characters:
        text = f"a{chr(code)}b"
        expected = text if code in KEPT else "ab"
        assert normalize_one(text, NormalizeParams(unicode_form="none")) == expected, hex(code)


@pytest.mark.parametrize(("text", "length", "expected"), [
    ("flag \U0001f1ef\U0001f1f5\U0001f1e9\U0001f1ea", 8, "flag \U0001f1ef\U0001f1f5"),
    ("\U0001f44b\U0001f3fd hi", 1, ""),
    (f"{TECHNOLOGIST}!", 2, ""),
    ("\u0915\u094d\u0937\u0924\u094d\u0930\u093f\u092f", 2, ""),
    ("\u0915\u094d\u0937\u0924\u094d\u0930\u093f\u092f", 4, "\u0915\u094d\u0937"),
    (f"{SCOTLAND}{SCOTLAND}", 10, SCOTLAND),
    ("cafe\u0301 au lait", 4, "caf"),
    ("ab\r\ncd", 3, "ab"),
])
def test_max_length_cuts_at_a_grapheme_boundary(text, length, expected):
    params = NormalizeParams(max_length=length, unicode_form="none", collapse_whitespace=False)
    assert normalize_one(text, params) == expected
    out = NormalizeText(params).normalize(pl.Series([text, "x" * (length + 1)])).to_list()
    assert out == [expected, "x" * length]


@settings(max_examples=100)
@given(texts=SCRIPT_TEXTS, params=PARAMS)
@example(texts=[f"{FAMILY} \u202e{HIDDEN}{SCOTLAND}"], params=NormalizeParams(max_length=9))
def test_text_in_every_script_keeps_its_joiners_and_loses_hidden_characters(texts, params):
    """Both paths agree and a second pass changes nothing; no format character but the kept ones
    remains (tags only in a flag); without unescaping (``&zwj;``) or a cut, every joiner stays."""
    step = NormalizeText(params)
    once = step.normalize(pl.Series(texts, dtype=pl.Utf8)).to_list()
    assert once == [normalize_one(text, params) for text in texts]
    assert step.normalize(pl.Series(once, dtype=pl.Utf8)).to_list() == once
    assert [normalize_one(text, params) for text in once] == once
    for text, out in zip(texts, once, strict=True):
        if params.strip_control:
            shown = out.replace(SCOTLAND, "").replace(ENGLAND, "")
            assert {ord(c) for c in shown if unicodedata.category(c) == "Cf"} <= KEPT, ascii(out)
            if not params.html_unescape and params.max_length is None:
                assert [c for c in out if c in JOINERS] == [c for c in text if c in JOINERS]


def test_the_step_keeps_joiners_and_cuts_whole_clusters(pm, tmp_path):
    texts = [f"{FAMILY} {PERSIAN}", "\u202eevil", "\U0001f1ef\U0001f1f5\U0001f1e9\U0001f1ea x"]
    table = pl.DataFrame({"uid": ["a", "b", "c"], "alt_text": texts})
    result = run_step("normalize_text", table, {"max_length": 3}, pm=pm, workdir=tmp_path)
    assert result.kept["alt_text"].to_list() == ["", "evi", "\U0001f1ef\U0001f1f5"]
