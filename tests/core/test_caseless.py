"""curate.caseless: the one ignore_case rule (canonical caseless matching), in Python and in DuckDB."""

from __future__ import annotations

import unicodedata

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.caseless import fold, fold_sql, register_fold

# Letters whose case or composition trips simpler rules: Turkish I's, sharp s, sigmas, ligatures,
# the Kelvin and Angstrom signs, precomposed and combining accents, U+0345 (folds to an iota).
TRICKY = ["İ", "I", "i", "ı", "ß", "ẞ", "ss", "S", "Σ", "σ", "ς", "ﬁ", "K", "k", "Å", "Å", "A\u030a", "é",
          "e\u0301", "É", "ǰ", "J\u030c", "\u0345", "\u0301", "ᾳ", "Α", "한", "\u1112\u1161\u11ab", " "]
tricky = st.lists(st.sampled_from(TRICKY), max_size=8).map("".join)
anything = st.one_of(tricky, st.text(max_size=12))


def casefold_canonical(text: str) -> str:
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", text).casefold())


def test_full_case_folding_without_locale_rules():
    assert fold("STRASSE") == fold("straße") == fold("Strasse") == "strasse"
    assert fold("ΣΑΣ") == fold("σας") == fold("σασ")
    assert fold("İSTANBUL") == "i\u0307stanbul" != fold("istanbul")  # no Turkish rule
    assert fold("ı") == "ı"
    assert fold("CAFE\u0301") == fold("café") == "café"


@given(text=anything)
def test_fold_is_canonical_caseless_matching_and_invariant_under_normalization(text):
    folded = fold(text)
    assert folded == casefold_canonical(text)
    assert fold(unicodedata.normalize("NFD", text)) == fold(unicodedata.normalize("NFC", text)) == folded
    assert fold(folded) == folded and unicodedata.is_normalized("NFC", folded)


@given(text=st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=30))
def test_the_ascii_fast_path_is_the_general_rule(text):
    assert fold(text) == casefold_canonical(text) == text.lower()


@settings(max_examples=30)
@given(texts=st.lists(st.one_of(st.none(), anything), max_size=20))
def test_duckdb_folds_as_python_ascii_in_sql_the_rest_in_python(texts):
    con = duckdb.connect()
    try:
        register_fold(con)
        con.execute("CREATE TABLE t (i INTEGER, s VARCHAR)")
        if texts:
            con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(texts)))
        got = [row[0] for row in con.execute(f"SELECT {fold_sql('s')} FROM t ORDER BY i").fetchall()]
    finally:
        con.close()
    assert got == [None if text is None else fold(text) for text in texts]
