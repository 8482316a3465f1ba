"""MetaCLIP's substring matching: which metadata entries occur in a text, as whole words.

MetaCLIP (facebookresearch/MetaCLIP, ``metaclip/metaclip1/substr_matching.py``) pads the text
with a space on each side, wraps ``, . ; : ? ! ``` in spaces and turns tabs and line breaks
into spaces; an entry matches when ``" " + entry + " "`` is a plain, case-sensitive substring
of that. So "red" matches "a red circle." but not "redwood" or "reds", and multi-word entries
match across one space only. MetaCLIP does not lowercase (no ``.lower()`` anywhere in its
curation code); ``ignore_case`` here is an option, off by default.

Boundary rule ``v2`` is MetaCLIP 2's (``metaclip/curation/substr_matching.py``): an entry side
that is a CJK/Thai/Lao/Burmese/Khmer/Tibetan character or punctuation is not padded, since those
scripts do not put spaces between words. For entries that start and end with a letter or digit
the two rules agree.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Literal

import polars as pl

if TYPE_CHECKING:
    import pyarrow as pa

PUNCTUATION_TO_WRAP = (",", ".", ";", ":", "?", "!", "`")
SPACE_LIKE = ("\t", "\n", "\r")
Boundary = Literal["v1", "v2"]

# MetaCLIP 2's full-width punctuation, counted as punctuation by its boundary rule.
_WIDE_PUNCTUATION = frozenset("，。、；：？！“”‘’（）【】《》〈〉「」『』～—")
_UNSPACED_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF), (0x2CEB0, 0x2EBEF), (0xF900, 0xFAFF), (0x2E80, 0x2EFF), (0x2F00, 0x2FDF),
    (0x2FF0, 0x2FFF),  # CJK
    (0x0E00, 0x0E7F), (0x0E80, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x0F00, 0x0FFF),  # Thai…Tibetan
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


def _unspaced(char: str) -> bool:
    code = ord(char)
    return (
        char in string.punctuation
        or char in _WIDE_PUNCTUATION
        or any(low <= code <= high for low, high in _UNSPACED_RANGES)
    )


def padded(entry: str, boundary: Boundary = "v1") -> str:
    """The key an entry is looked up by: a space on each side (v2: only beside a spaced script)."""
    if boundary == "v1":
        return f" {entry} "
    left = "" if _unspaced(entry[0]) else " "
    right = "" if _unspaced(entry[-1]) else " "
    return f"{left}{entry}{right}"


class Matcher:
    """One pyahocorasick automaton per language over the padded entries.

    A key may stand for several entry ids (the same entry listed twice, or twice once lowered);
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
            key = padded(entry.lower() if ignore_case else entry, boundary)
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
        """Ids of the entries in an already :func:`spacing`-ed text, unordered."""
        automaton = self.automata.get(language)
        if automaton is None or spaced is None:
            return set()
        found = set(map(itemgetter(1), automaton.iter(spaced.lower() if self.ignore_case else spaced)))
        if self.shared and min(found, default=0) < 0:
            for value in [v for v in found if v < 0]:
                found.discard(value)
                found.update(self.shared[-value - 1])
        return found

    def match(self, spaced: str | None, language: str | None = None) -> list[int]:
        """Sorted ids of the entries in an already :func:`spacing`-ed text."""
        return sorted(self.found(spaced, language))

    def match_columns(self, columns: Sequence[Sequence[str | None]], languages: Sequence[str | None] | None,
                      rows: int) -> pa.LargeListArray:
        """Per row, the sorted ids found in any of ``columns`` (spaced texts), as an Arrow list array."""
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
    """MetaCLIP's loop (``entry in text`` for every entry), for tests and the benchmark."""
    if text is None:
        return []
    spaced = spacing(text.lower() if ignore_case else text)
    return [
        entry_id for entry_id, entry in enumerate(entries)
        if (languages is None or languages[entry_id] == language)
        and padded(entry.lower() if ignore_case else entry, boundary) in spaced
    ]
