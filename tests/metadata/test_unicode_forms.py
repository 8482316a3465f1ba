"""metadata_match across Unicode spellings: NFC and NFD texts and lists match alike, ignore_case is
curate.caseless.fold, and ``boundary: unspaced`` treats Japanese kana as written without spaces."""

from __future__ import annotations

import unicodedata

import polars as pl
import pytest
from curate_metadata.entries import MetadataError, load_entries
from curate_metadata.match import NO_MATCH
from curate_metadata.matching import (
    NORMALIZED_INTO_SPACED,
    PUNCTUATION_TO_WRAP,
    SPACE_LIKE,
    Matcher,
    matchable,
    matchable_column,
    padded,
    reference_match,
)
from hypothesis import example, given
from hypothesis import strategies as st

from curate.caseless import fold
from curate.testing import run_step

# Spellings that are one text in NFC, or one text caselessly: composed and decomposed accents,
# case pairs, U+037E (NFC: ';') and U+1FEF (NFC: '`'), which MetaCLIP's spacing wraps; spaces and
# a full stop, so entries meet word boundaries; a Han character for v2's rule.
SPELLINGS = [["é", "e\u0301", "É", "E\u0301"], ["Å", "Å", "å", "a\u030a"], ["ß", "SS", "ss", "ẞ"],
             ["Σ", "σ", "ς"], ["İ", "i\u0307"], ["i", "I"], ["ı"], ["한", "\u1112\u1161\u11ab"],
             ["\u037e", ";"], ["\u1fef", "`"], ["a", "A"], ["b", "B"], [" "], [" "], ["."], ["中"], ["\u0301"]]


@st.composite
def texts_and_entries(draw):
    """A text, and entries made of runs of its letters, each letter in any of its spellings."""
    letters = draw(st.lists(st.integers(0, len(SPELLINGS) - 1), max_size=14))

    def spelled(run):
        return "".join(draw(st.sampled_from(SPELLINGS[letter])) for letter in run)

    entries_ = []
    for _ in range(draw(st.integers(1, 5))):
        start = draw(st.integers(0, len(letters)))
        run = letters[start:start + draw(st.integers(1, 4))]
        run = run or draw(st.lists(st.integers(0, len(SPELLINGS) - 1), min_size=1, max_size=3))
        entries_.append(spelled(run))
    return spelled(letters), [e for e in entries_ if e.strip()] or ["a"]


texts = st.lists(st.sampled_from([s for group in SPELLINGS for s in group]), max_size=14).map("".join)
forms = st.sampled_from(["NFC", "NFD"])
boundaries = st.sampled_from(["v1", "v2", "unspaced"])


def rows(texts_):
    return pl.DataFrame({"uid": [f"{i:016x}" for i in range(len(texts_))], "alt_text": texts_})


def found(entries_, text, **options):
    return Matcher(entries_, **options).match(matchable(text, options.get("ignore_case", False)))


def test_an_nfd_list_matches_nfc_texts_and_an_nfc_list_nfd_texts():
    nfd = [unicodedata.normalize("NFD", e) for e in ["café", "brûlée", "Zürich"]]
    assert found(nfd, "a café in Paris") == [0]
    assert found(["café"], unicodedata.normalize("NFD", "a café in Paris")) == [0]
    assert found(["cafe"], "a café") == []  # a letter with an accent is not the letter without


def test_the_step_keeps_nfc_rows_of_an_nfd_list_and_names_entries_as_listed(metadata_pm, tmp_path):
    """A list saved by a macOS tool (NFD) dropped every row of normalize_text's NFC texts."""
    listed = [unicodedata.normalize("NFD", e) for e in ["café", "brûlée", "Zürich"]]
    path = tmp_path / "entries.txt"
    path.write_text("\n".join(listed) + "\n", encoding="utf-8")
    table = rows(["a café in Paris", "Crème brûlée dessert", "the Zürich lake", "nothing here"])
    result = run_step("metadata_match", table, {"entries": str(path)}, pm=metadata_pm, workdir=tmp_path)
    assert result.kept["metadata_entries"].to_list() == [[0], [1], [2]]
    assert result.drop_reasons == {NO_MATCH: 1}


@example(drawn=("a café", ["café"]), text_form="NFC", entry_form="NFD", ignore_case=False, boundary="v1")
@given(drawn=texts_and_entries(), text_form=forms, entry_form=forms, ignore_case=st.booleans(),
       boundary=boundaries)
def test_matching_is_invariant_under_nfc_and_nfd(drawn, text_form, entry_form, ignore_case, boundary):
    text, entries_ = drawn
    options = {"ignore_case": ignore_case, "boundary": boundary}
    expected = reference_match(text, entries_, **options)
    written = [unicodedata.normalize(entry_form, e) for e in entries_]
    assert found(written, unicodedata.normalize(text_form, text), **options) == expected
    assert found(entries_, text, **options) == expected


@example(drawn=("STRASSE", ["straße"]), boundary="v1")
@given(drawn=texts_and_entries(), boundary=boundaries)
def test_ignore_case_matches_as_the_folded_text_and_entries_do(drawn, boundary):
    text, entries_ = drawn
    assert found(entries_, text, ignore_case=True, boundary=boundary) == \
        found([fold(e) for e in entries_], fold(text), boundary=boundary)


@given(values=st.lists(st.one_of(st.none(), texts, st.text(max_size=10)), max_size=12),
       ignore_case=st.booleans())
def test_the_column_path_spaces_as_the_one_text_path(values, ignore_case):
    """ASCII values are spaced (and lowercased) in Polars, the others in Python: the same texts."""
    column = pl.Series("alt_text", values, dtype=pl.Utf8)
    expected = [None if value is None else matchable(value, ignore_case) for value in values]
    assert matchable_column(column, ignore_case) == expected


def test_ignore_case_folds_sharp_s_and_final_sigma_but_knows_no_turkish():
    assert found(["straße"], "STRASSE sign", ignore_case=True) == [0]
    assert found(["ΣΑΣ"], "σας", ignore_case=True) == [0]
    assert found(["istanbul"], "İSTANBUL skyline", ignore_case=True) == []  # İ folds to i + U+0307
    assert found(["İstanbul"], "İSTANBUL skyline", ignore_case=True) == [0]


def test_an_entry_in_two_normal_forms_is_refused_naming_both_lines(tmp_path):
    path = tmp_path / "entries.txt"
    path.write_text("red\ncafé\nblue\ncafe\u0301\n", encoding="utf-8")
    said = r"entries 2 and 4 of the list are one text in two Unicode spellings \('caf\\xe9' and 'cafe\\u0301'"
    with pytest.raises(MetadataError, match=said):
        load_entries(str(path))


def test_v2_stays_metaclip_2s_rule_and_unspaced_adds_kana():
    texts_ = ["東京タワーの夜景", "おいしいすしです", "ｽｼ・ﾗｰﾒﾝ", "서울의 야경"]
    entries_ = ["東京", "タワー", "すし", "ｽｼ", "서울"]
    v2 = [found(entries_, t, boundary="v2") for t in texts_]
    unspaced = [found(entries_, t, boundary="unspaced") for t in texts_]
    assert v2 == [[0], [], [], []]
    assert unspaced == [[0, 1], [2], [3], []]  # Hangul is written with spaces: not among them
    assert padded("タワー", "v2") == " タワー " and padded("タワー", "unspaced") == "タワー"


def test_the_step_takes_boundary_unspaced(metadata_pm, tmp_path):
    path = tmp_path / "entries.txt"
    path.write_text("タワー\nすし\n", encoding="utf-8")
    table = rows(["東京タワーの夜景", "おいしいすしです", "a tower"])
    result = run_step("metadata_match", table, {"entries": str(path), "boundary": "unspaced"}, pm=metadata_pm,
                      workdir=tmp_path)
    assert result.kept["metadata_entries"].to_list() == [[0], [1]]


def test_only_the_listed_characters_normalize_into_punctuation_that_spacing_wraps():
    """matchable_column normalizes spaced texts, and spaces again only texts holding these."""
    wrapped = set(PUNCTUATION_TO_WRAP) | set(SPACE_LIKE)
    makers = {chr(code) for code in range(0x80, 0x110000) if not 0xD800 <= code <= 0xDFFF
              and wrapped & set(unicodedata.normalize("NFD", chr(code)) + fold(chr(code)))}
    assert makers == set(NORMALIZED_INTO_SPACED)
