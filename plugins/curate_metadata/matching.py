"""MetaCLIP's substring matching: which metadata entries occur in a text, as whole words.

MetaCLIP (facebookresearch/MetaCLIP, ``metaclip/metaclip1/substr_matching.py``) pads the text
with a space on each side, wraps ``, . ; : ? ! ``` in spaces and turns tabs and line breaks
into spaces; an entry matches when ``" " + entry + " "`` is a plain, case-sensitive substring
of that. So "red" matches "a red circle." but not "redwood" or "reds", and multi-word entries
match across one space only. MetaCLIP does not lowercase (no ``.lower()`` anywhere in its
curation code); ``ignore_case`` here is an option, off by default.

MetaCLIP compares code points as they come. Here texts and entries are first brought to one
form, :func:`canonical`: Unicode NFC, so an entry saved decomposed (NFD, as macOS tools write
file names and some lists) matches the composed text ``normalize_text`` makes, and the other way
round; with ``ignore_case``, :func:`curate.caseless.fold` (NFD, full case folding, NFC), the rule
``exact_dedup`` uses too. ASCII texts, which no normalization changes, are spaced (and
lowercased) in Polars; only the others are normalized one by one in Python.

Boundary rule ``v2`` is MetaCLIP 2's (``metaclip/curation/substr_matching.py``,
``is_cjk_or_similar``), kept exactly so its numbers reproduce: an entry side that is ASCII
punctuation, one of its full-width punctuation marks, or a character of :data:`_UNSPACED_RANGES`
(Han ideographs with their radicals and compatibility blocks, Thai, Lao, Myanmar, Khmer,
Tibetan) is not padded, since those scripts do not put spaces between words. Japanese kana,
the ideographic full stop's block (U+3000–U+303F), half-width forms and Hangul are not among
them: ``タワー`` matches only with spaces or punctuation around it. Rule ``unspaced`` is v2 plus
:data:`_MORE_UNSPACED_RANGES` (kana and the blocks MetaCLIP 2 leaves out). For entries that start
and end with a letter or digit of a spaced script all rules agree.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Literal

import polars as pl

from curate.caseless import fold, nfc

if TYPE_CHECKING:
    import pyarrow as pa

PUNCTUATION_TO_WRAP = (",", ".", ";", ":", "?", "!", "`")
SPACE_LIKE = ("\t", "\n", "\r")
# The only characters whose NFC form (or fold) holds one of the two tuples above: U+037E GREEK
# QUESTION MARK is ';' and U+1FEF GREEK VARIA '`' (every code point checked, tests/metadata).
NORMALIZED_INTO_SPACED = ("\u037e", "\u1fef")
Boundary = Literal["v1", "v2", "unspaced"]

# MetaCLIP 2's full-width punctuation, counted as punctuation by its boundary rule.
_WIDE_PUNCTUATION = frozenset("，。、；：？！“”‘’（）【】《》〈〉「」『』～—")
_UNSPACED_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF), (0x2CEB0, 0x2EBEF), (0xF900, 0xFAFF), (0x2E80, 0x2EFF), (0x2F00, 0x2FDF),
    (0x2FF0, 0x2FFF),  # CJK
    (0x0E00, 0x0E7F), (0x0E80, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x0F00, 0x0FFF),  # Thai…Tibetan
)
# Boundary "unspaced": what MetaCLIP 2's ranges leave out of the scripts written without spaces.
_MORE_UNSPACED_RANGES = (
    (0x3000, 0x303F),  # CJK symbols and punctuation: 、。々〆〇「」〜
    (0x3040, 0x309F), (0x30A0, 0x30FF), (0x31F0, 0x31FF),  # Hiragana, Katakana (with ・ ー), its extensions
    (0xFF61, 0xFF9F),  # half-width CJK punctuation and katakana
    (0x1AFF0, 0x1AFFF), (0x1B000, 0x1B16F),  # Kana Extended-B, Kana Supplement, Extended-A, Small Kana
    (0x3190, 0x319F), (0x31C0, 0x31EF),  # Kanbun, CJK strokes
    (0x2F800, 0x2FA1F), (0x2EBF0, 0x2EE5F), (0x30000, 0x323AF),  # Han: compatibility supplement, Ext. I, G, H
    (0x19E0, 0x19FF), (0xA9E0, 0xA9FF), (0xAA60, 0xAA7F),  # Khmer symbols, Myanmar Extended-B and -A
)


def spacing(text: str) -> str:
    """MetaCLIP's ``spacing``: the text as entries are looked up in."""
    spaced = f" {text} "
    for mark in PUNCTUATION_TO_WRAP:
        spaced = spaced.replace(mark, f" {mark} ")
    for char in SPACE_LIKE:
        spaced = spaced.replace(char, " ")
    return spaced


def spacing_expr(column: pl.Expr) -> pl.Expr:
    """:func:`spacing` as a polars expression (the same string, computed without a Python loop)."""
    spaced = pl.lit(" ") + column + pl.lit(" ")
    for mark in PUNCTUATION_TO_WRAP:
        spaced = spaced.str.replace_all(mark, f" {mark} ", literal=True)
    for char in SPACE_LIKE:
        spaced = spaced.str.replace_all(char, " ", literal=True)
    return spaced


def _in(code: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(low <= code <= high for low, high in ranges)


def _unspaced(char: str, boundary: Boundary = "v2") -> bool:
    code = ord(char)
    return (
        char in string.punctuation
        or char in _WIDE_PUNCTUATION
        or _in(code, _UNSPACED_RANGES)
        or (boundary == "unspaced" and _in(code, _MORE_UNSPACED_RANGES))
    )


def padded(entry: str, boundary: Boundary = "v1") -> str:
    """The key an entry is looked up by: a space on each side (v2, unspaced: only beside a spaced script)."""
    if boundary == "v1":
        return f" {entry} "
    left = "" if _unspaced(entry[0], boundary) else " "
    right = "" if _unspaced(entry[-1], boundary) else " "
    return f"{left}{entry}{right}"


def canonical(text: str, ignore_case: bool = False) -> str:
    """The form texts and entries are compared in: NFC; with ``ignore_case`` folded
    (:func:`curate.caseless.fold`, which is NFC too)."""
    return fold(text) if ignore_case else nfc(text)


def matchable(text: str, ignore_case: bool = False) -> str:
    """A text as entries are looked up in it: :func:`canonical`, then :func:`spacing` (in this
    order: NFC turns U+037E GREEK QUESTION MARK into ';' and U+1FEF into '`', which spacing wraps)."""
    return spacing(canonical(text, ignore_case))


def matchable_column(column: pl.Series, ignore_case: bool = False) -> list[str | None]:
    """:func:`matchable` of every value of a text column, cheaply: Polars spaces every value, then
    ASCII values (no normalization changes them) are only lowercased (with ``ignore_case``), the
    others normalized or folded as spaced (spacing adds and replaces ASCII spaces and punctuation,
    which compose with nothing), and only values holding a character that normalizes into
    punctuation spacing wraps (:data:`NORMALIZED_INTO_SPACED`) are spaced again from the start."""
    column = column.cast(pl.Utf8)  # a column of nulls only may come typed Null
    texts = column.to_frame("text").select(spacing_expr(pl.col("text"))).to_series().to_list()
    again = []
    for row, text in enumerate(texts):
        if text is None:
            continue
        if text.isascii():
            if ignore_case:
                texts[row] = text.lower()
        elif any(char in text for char in NORMALIZED_INTO_SPACED):
            again.append(row)
        else:
            texts[row] = canonical(text, ignore_case)
    for row, value in zip(again, column.gather(again).to_list(), strict=True):
        texts[row] = matchable(value, ignore_case)
    return texts


class Matcher:
    """One pyahocorasick automaton per language over the padded entries, each in its
    :func:`canonical` form; texts are looked up as :func:`matchable` (or :func:`matchable_column`)
    makes them.

    A key may stand for several entry ids (the same entry listed twice, or twice once folded);
    every one of them matches, as a loop over the list would find them all. Such a key's value
    is a negative index into ``shared``; every other key's value is its entry id, so the common
    case is one set of ints per text.
    """

    def __init__(self, entries: Sequence[str], languages: Sequence[str | None] | None = None,
                 *, ignore_case: bool = False, boundary: Boundary = "v1"):
        import ahocorasick

        self.ignore_case = ignore_case
        keys: dict[str | None, dict[str, list[int]]] = {}
        for entry_id, entry in enumerate(entries):
            language = languages[entry_id] if languages is not None else None
            key = padded(canonical(entry, ignore_case), boundary)
            keys.setdefault(language, {}).setdefault(key, []).append(entry_id)
        self.shared: list[tuple[int, ...]] = []
        self.automata: dict[str | None, ahocorasick.Automaton] = {}
        for language, by_key in keys.items():
            automaton = ahocorasick.Automaton()
            for key, ids in by_key.items():
                if len(ids) == 1:
                    automaton.add_word(key, ids[0])
                else:
                    self.shared.append(tuple(ids))
                    automaton.add_word(key, -len(self.shared))
            automaton.make_automaton()
            self.automata[language] = automaton

    def found(self, spaced: str | None, language: str | None = None) -> set[int]:
        """Ids of the entries in a :func:`matchable` text (of the same ``ignore_case``), unordered."""
        automaton = self.automata.get(language)
        if automaton is None or spaced is None:
            return set()
        found = set(map(itemgetter(1), automaton.iter(spaced)))
        if self.shared and min(found, default=0) < 0:
            for value in [v for v in found if v < 0]:
                found.discard(value)
                found.update(self.shared[-value - 1])
        return found

    def match(self, spaced: str | None, language: str | None = None) -> list[int]:
        """Sorted ids of the entries in a :func:`matchable` text."""
        return sorted(self.found(spaced, language))

    def match_columns(self, columns: Sequence[Sequence[str | None]], languages: Sequence[str | None] | None,
                      rows: int) -> pa.LargeListArray:
        """Per row, the sorted ids found in any of ``columns`` (each :func:`matchable_column`), as an
        Arrow list array."""
        import pyarrow as pa

        values: list[int] = []
        offsets = [0]
        for row in range(rows):
            language = languages[row] if languages is not None else None
            if len(columns) == 1:
                values.extend(self.match(columns[0][row], language))
            else:
                found: set[int] = set()
                for column in columns:
                    found |= self.found(column[row], language)
                values.extend(sorted(found))
            offsets.append(len(values))
        return pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), pa.array(values, pa.int64()))


def reference_match(text: str | None, entries: Sequence[str], languages: Sequence[str | None] | None = None,
                    language: str | None = None, *, ignore_case: bool = False,
                    boundary: Boundary = "v1") -> list[int]:
    """MetaCLIP's loop (``entry in text`` for every entry), over :func:`canonical` texts and
    entries, for tests and the benchmark."""
    if text is None:
        return []
    spaced = matchable(text, ignore_case)
    return [
        entry_id for entry_id, entry in enumerate(entries)
        if (languages is None or languages[entry_id] == language)
        and padded(canonical(entry, ignore_case), boundary) in spaced
    ]
