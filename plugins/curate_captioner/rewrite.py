"""Prompt rewrites: web alt-text written the way a captioner's tokenizer reads it.

A BPE tokenizer learnt on ordinary text has tokens for ``Zorblax`` and ``Tower``, but not for the
web's spellings of them: ``ZORBLAX TOWER`` splits into letters, ``zorblax-tower-logo.jpg`` into
pieces that share no token with the name the caption should write. The captioner then has to
spell the name back, and often does not. A rewrite hands the decoder the words it knows. Only the
prompt is rewritten; the alt-text column never is. A captioner names its rewrites, in order, in
``captioner.json`` (``prompt_rewrites``); the ``realign`` step may override them.

``file_names``: a file name is read as its words. A token of words joined by ``-`` or ``_``
followed by an image extension (``pemberly-bridge-logo.jpg``), a token of three words or more
joined by separators that include ``_`` (``yontab_stadium_striped``), or an alt-text that is
nothing but three words or more joined by ``-`` (``light-blue-circles``) becomes its words, each
lower-case word capitalised (``Pemberly Bridge Logo``), the extension dropped. Hyphenated words in
a sentence (``a state-of-the-art design``) and codes (``IMG_0012.jpg``, a camera's name: fewer than
two parts are words) are left as written.

``fold_shouting``: shouted words are capitalised.
- a text whose cased letters are mostly capitals (at least ``SHOUTED_SHARE`` of them, and at
  least ``MIN_LETTERS`` letters, counting words outside codes): every upper-case word of two
  letters or more is folded;
- in any other text, a run of two or more upper-case words (``NEW YORK skyline``) is folded;
  a lone upper-case word in a mixed text (``USA``, ``NASA``, ``HD``) is an acronym and is kept;
- a run of non-space characters holding a digit is a code (``DSC03575.JPG``, ``PXL_4527.JPG``,
  ``MP3``, ``A380``): never folded, and its letters do not count as shouting.
Folding only lowers letters (``ZORBLAX`` -> ``Zorblax``, ``O'BRIEN'S`` -> ``O'brien's``): the text's
characters, length and lower-cased form are unchanged, and folding twice is folding once.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from typing import Literal

PromptRewrite = Literal["file_names", "fold_shouting"]
SHOUTED_SHARE = 0.6
MIN_LETTERS = 4

# A word: letters, digits and inner apostrophes (O'BRIEN'S).
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
# A code: a run of non-space characters with a digit in it.
_CODE = re.compile(r"[^\s(\[\"']*\d[^\s)\]\"']*")
# _CODE where it can start but at the search's start: not after a character its first part takes
# (finditer's leftmost match never starts there, as the match one character earlier is longer).
_CODE_AFTER = re.compile(r"(?<![^\s(\[\"'])" + _CODE.pattern)
# Between two words of a shouted run: spaces and light punctuation, no sentence break.
_RUN_GAP = re.compile(r"[\s\-–—,&/|:+]*")
_EXTENSION = r"\.(?:jpe?g|png|gif|webp|avif|bmp|tiff?)"
# Tokens (between spaces, brackets, quotes or trailing punctuation): words joined by - or _,
# with an image extension / without one.
_START, _END = r"(?<![^\s(\[\"'])", r"(?![^\s)\],;:!?\"'])"
_SLUG_FILE = re.compile(_START + r"([^\W_]+(?:[-_][^\W_]+)+)" + _EXTENSION + _END, re.IGNORECASE)
_SLUG_BARE = re.compile(_START + r"([^\W_]+(?:[-_][^\W_]+){2,})" + _END)


def _is_upper_word(word: str) -> bool:
    """Two cased letters or more, none lower case."""
    cased = [c for c in word if c.isupper() or c.islower()]
    return len(cased) >= 2 and all(c.isupper() for c in cased)


def _words_outside_codes(text: str) -> list[re.Match[str]]:
    """The words of ``text`` that are not part of a code: a run of non-space characters holding a
    digit (``DSC03575.JPG``, ``PXL_4527.JPG``, ``A380``) is written as it is."""
    codes = _code_spans(text)
    starts = [start for start, _ in codes]
    words = []
    for match in _WORD.finditer(text):
        code = bisect.bisect_right(starts, match.start()) - 1  # the last code starting at or before the word
        if code < 0 or match.start() >= codes[code][1]:
            words.append(match)
    return words


def _code_spans(text: str) -> list[tuple[int, int]]:
    """The spans of ``_CODE.finditer(text)``, in linear time. finditer tries every start inside a
    run of non-space characters, and a try inside a run without a digit reads to the run's end:
    10 000 such characters took 1.4 s, 100 000 minutes. Past the search's start, only a start :data:`_CODE_AFTER`
    allows can be the leftmost match."""
    spans: list[tuple[int, int]] = []
    at = 0
    while at < len(text):
        match = _CODE.match(text, at) or _CODE_AFTER.search(text, at + 1)
        if match is None:
            break
        spans.append(match.span())
        at = match.end()
    return spans


def _capitalise(word: str) -> str:
    """First cased letter kept, every later one lowered: ``ZORBLAX`` -> ``Zorblax``."""
    out, seen = [], False
    for c in word:
        if c.isupper() or c.islower():
            lowered = c.lower()
            out.append(lowered if seen and len(lowered) == 1 else c)  # 'İ'.lower() is two characters
            seen = True
        else:
            out.append(c)
    return "".join(out)


def is_shouted(text: str) -> bool:
    """Mostly capitals: at least ``SHOUTED_SHARE`` of at least ``MIN_LETTERS`` cased letters,
    counting the letters of words outside codes."""
    letters = "".join(m.group(0) for m in _words_outside_codes(text))
    upper = sum(c.isupper() for c in letters)
    lower = sum(c.islower() for c in letters)
    return upper + lower >= MIN_LETTERS and upper >= SHOUTED_SHARE * (upper + lower)


def fold_shouting(text: str) -> str:
    """``text`` with its shouted words capitalised (module docstring); anything else unchanged."""
    words = _words_outside_codes(text)
    if not words:
        return text
    upper = [_is_upper_word(m.group(0)) for m in words]
    if is_shouted(text):
        fold = upper
    else:
        fold = [False] * len(words)
        for i in range(len(words) - 1):
            gap = text[words[i].end():words[i + 1].start()]
            if upper[i] and upper[i + 1] and _RUN_GAP.fullmatch(gap):
                fold[i] = fold[i + 1] = True
    if not any(fold):
        return text
    pieces, at = [], 0
    for match, folded in zip(words, fold, strict=True):
        if folded:
            pieces.append(text[at:match.start()])
            pieces.append(_capitalise(match.group(0)))
            at = match.end()
    pieces.append(text[at:])
    return "".join(pieces)


def _words_of(slug: str) -> str | None:
    """A slug's words, lower-case ones capitalised; None for a code, whose parts are not at least
    two words of two letters or more (``IMG_0012``, ``PXL_4527``, ``A-1``)."""
    parts = re.split(r"[-_]", slug)
    if sum(p.isalpha() and len(p) >= 2 for p in parts) < 2:
        return None
    return " ".join(p[:1].upper() + p[1:] if p.isalpha() and p.islower() else p for p in parts)


def file_name_words(text: str) -> str:
    """``text`` with its file names read as words (module docstring); anything else unchanged."""
    whole = text.strip()

    def with_extension(match: re.Match[str]) -> str:
        return _words_of(match.group(1)) or match.group(0)

    def bare(match: re.Match[str]) -> str:
        if "_" not in match.group(1) and match.group(0) != whole:
            return match.group(0)  # hyphenated words in a sentence
        return _words_of(match.group(1)) or match.group(0)

    return _SLUG_BARE.sub(bare, _SLUG_FILE.sub(with_extension, text))


REWRITES: dict[str, Callable[[str], str]] = {"file_names": file_name_words, "fold_shouting": fold_shouting}


def rewrite_prompt(text: str, rewrites: Sequence[str]) -> str:
    """The prompt a captioner reads for ``text``: its ``rewrites`` applied in order."""
    for name in rewrites:
        text = REWRITES[name](text)
    return text
