"""The one rule for comparing text with ``ignore_case`` (``exact_dedup``, ``metadata_match``):
Unicode's canonical caseless matching (The Unicode Standard, §3.13, D145), as :func:`fold` writes it.

A text is decomposed (NFD), fully case folded (Python's ``str.casefold``: the Unicode C + F
mappings of CaseFolding.txt) and composed again (NFC). So ``straße``, ``STRASSE`` and ``Strasse``
fold alike, ``ΣΑΣ``, ``σας`` and ``σασ`` too, and a text spelled with precomposed letters
(``café``, NFC) folds as the same text with combining marks (``cafe`` + U+0301, NFD): plain
``casefold`` is not closed under normalization (U+0345 COMBINING YPOGEGRAMMENI folds to a
spacing iota, so its order among the marks changes the result), hence the NFD first.

No locale's rules: Turkish and Azerbaijani dotted ``İ`` (U+0130) folds to ``i`` + U+0307
COMBINING DOT ABOVE, not to ``i``, so ``İSTANBUL`` folds to ``i̇stanbul`` and does not equal
``istanbul``; dotless ``ı`` stays ``ı``. Lowercase letter by letter (DuckDB's ``lower``, which
``exact_dedup`` used before) made ``İ`` ``i`` but kept ``ß`` apart from ``ss``; Python's
``str.lower`` (``metadata_match`` before) gave ``i̇`` and ``σας``: two rules in one pipeline.

ASCII text folds to its lowercase (``str.lower``), by far the common case, and is the fast path:
:func:`fold` checks ``str.isascii`` first, and :func:`fold_sql` lets DuckDB lowercase ASCII values
itself and hands only the others to Python.
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

FOLD_FUNCTION = "curate_casefold"


def fold(text: str) -> str:
    """``text`` folded for caseless comparison: NFC(casefold(NFD(text))); ``text.lower()`` for ASCII."""
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", text).casefold())


def nfc(text: str) -> str:
    """``text`` in Unicode Normalization Form C (composed): the form compared without ``ignore_case``."""
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def _fold_arrow(values: pa.Array) -> pa.Array:
    import pyarrow as pa

    return pa.array([None if value is None else fold(value) for value in values.to_pylist()], pa.string())


def register_fold(con: duckdb.DuckDBPyConnection) -> None:
    """Make :data:`FOLD_FUNCTION` (:func:`fold`, over Arrow batches) callable in ``con``'s SQL."""
    from duckdb.sqltypes import VARCHAR

    # A lambda: DuckDB reads a function's annotations, which name pyarrow only for type checkers.
    con.create_function(FOLD_FUNCTION, lambda values: _fold_arrow(values), [VARCHAR], VARCHAR, type="arrow",
                        side_effects=False)


def fold_sql(expr: str) -> str:
    """SQL for :func:`fold` of the text ``expr``: DuckDB's ``lower`` where the value is ASCII (as
    many bytes as characters), :data:`FOLD_FUNCTION` elsewhere (needs :func:`register_fold`)."""
    return f"CASE WHEN strlen({expr}) = length({expr}) THEN lower({expr}) ELSE {FOLD_FUNCTION}({expr}) END"
