"""Cutting a text at a grapheme cluster boundary: never inside a user-perceived character.

:func:`cut` keeps the longest prefix of whole extended grapheme clusters (Unicode's UAX #29, the
clusters of the ``regex`` module's ``\\X``) of at most so many code points. A code point cut gave
``🇯🇵🇩`` for ``🇯🇵🇩🇪`` (a lone regional indicator), ``👋`` for ``👋🏽`` (the skin tone lost),
``क्`` for ``क्षत्रिय`` (a dangling virama), a flag of Scotland without its end tag.

Only the cluster rules around the cut are read, going back from it until a boundary: each is a
rule about the two characters beside the boundary, but three that look further back (a run of
regional indicators, the emoji before ``Extend* ZWJ``, the Indic linker before ``Extend*``).
The character classes come from ``grapheme_table`` (written from the ``regex`` module's Unicode
data, so the result does not depend on the Python's own ``unicodedata``); ``test_graphemes``
checks every class and the cut against ``regex``.
"""

from __future__ import annotations

# Grapheme_Cluster_Break values: the low 4 bits of a class (CLASS_NAMES[value] is regex's name).
OTHER, CR, LF, CONTROL, EXTEND, ZWJ, REGIONAL, PREPEND, SPACING_MARK, L, V, T, LV, LVT = range(14)
CLASS_NAMES = ("Other", "CR", "LF", "Control", "Extend", "ZWJ", "Regional_Indicator", "Prepend",
               "SpacingMark", "L", "V", "T", "LV", "LVT")
GCB = 15
PICTOGRAPHIC = 16  # Extended_Pictographic (emoji)
# Indic_Conjunct_Break (rule GB9c): two bits above the others.
CONSONANT, LINKER, EXTEND_INCB = 32, 64, 96
INCB = 96
HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3  # LV every 28th syllable, LVT the others
CONTROLS = (CONTROL, CR, LF)


_classes = b""  # every code point's class, one byte each: made by _load on first use


def _load() -> bytes:
    """The classes of every code point (1.1 MB), from the table's runs."""
    global _classes
    from curate_basics.grapheme_table import RANGES

    classes = bytearray(0x110000)
    for (start, value), (end, _) in zip(RANGES, (*RANGES[1:], (0x110000, 0)), strict=True):
        classes[start:end] = bytes([value]) * (end - start)
    for code in range(HANGUL_FIRST, HANGUL_LAST + 1, 28):
        classes[code] = LV  # the others are LVT
    _classes = bytes(classes)
    return _classes


def char_class(char: str) -> int:
    """The class of one character: its Grapheme_Cluster_Break value and flags."""
    return (_classes or _load())[ord(char)]


def _after_linker(text: str, end: int) -> bool:
    """GB9c: ``text[:end]`` ends with an Indic linker (a virama), then Extend or Linker characters.
    UAX #29 also asks for a consonant before the linker; the ``regex`` module does not, and
    neither does this (they differ only where a virama follows no consonant: malformed text)."""
    while end > 0:
        incb = char_class(text[end - 1]) & INCB
        if incb == LINKER:
            return True
        if incb != EXTEND_INCB:
            return False
        end -= 1
    return False


def _pictographic_before(text: str, end: int) -> bool:
    """GB11: ``text[:end]`` ends with an emoji, then Extend characters."""
    while end > 0:
        value = char_class(text[end - 1])
        if value & PICTOGRAPHIC:
            return True
        if value & GCB != EXTEND:
            return False
        end -= 1
    return False


def is_boundary(text: str, at: int) -> bool:
    """Whether a grapheme cluster ends before ``text[at]`` (0 < at < len(text)): UAX #29's rules
    GB3 to GB999, in their order."""
    before, after = char_class(text[at - 1]), char_class(text[at])
    left, right = before & GCB, after & GCB
    if left == CR and right == LF:
        return False  # GB3
    if left in CONTROLS or right in CONTROLS:
        return True  # GB4, GB5
    if (left == L and right in (L, V, LV, LVT) or left in (LV, V) and right in (V, T)
            or left in (LVT, T) and right == T):
        return False  # GB6-GB8: a Hangul syllable of jamo
    if right in (EXTEND, ZWJ, SPACING_MARK) or left == PREPEND:
        return False  # GB9, GB9a, GB9b
    if after & INCB == CONSONANT and before & INCB in (LINKER, EXTEND_INCB) and _after_linker(text, at):
        return False  # GB9c: an Indic conjunct
    if left == ZWJ and after & PICTOGRAPHIC and _pictographic_before(text, at - 1):
        return False  # GB11: an emoji ZWJ sequence
    if left == REGIONAL and right == REGIONAL:
        run = 1
        while run < at and char_class(text[at - 1 - run]) & GCB == REGIONAL:
            run += 1
        return run % 2 == 0  # GB12, GB13: flags are pairs, counted from the run's start
    return True  # GB999


def cut(text: str, length: int) -> str:
    """The longest prefix of ``text`` made of whole grapheme clusters and at most ``length`` code
    points: ``""`` when the first cluster alone is longer. Linear in the cluster the cut falls in
    (each rule that looks back reads a run once)."""
    if len(text) <= length:
        return text
    for at in range(length, 0, -1):
        if is_boundary(text, at):
            return text[:at]
    return ""
