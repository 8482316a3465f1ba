"""Shouted alt-texts, folded to the case a captioner's tokenizer knows.

Web alt-texts are often written in capitals (``STOCK PHOTO - ZORBLAX TOWER AT DUSK``). A BPE
tokenizer learnt on ordinary text has tokens for ``Zorblax`` and ``Tower`` but not for their
upper-case spellings, which it splits into letters that share no token with the name the caption
should write; the captioner then has to spell the name back from letters, and often does not.
Folding the shouted words to a capitalised word (``Zorblax Tower``) hands the decoder the tokens
it knows. Only the prompt is folded; the alt-text column is never changed.

What counts as shouted:
- a text whose cased letters are mostly capitals (at least ``SHOUTED_SHARE`` of them, and at
  least ``MIN_LETTERS`` letters): every upper-case word of two letters or more is folded;
- in any other text, a run of two or more upper-case words (``NEW YORK skyline``) is folded;
  a lone upper-case word in a mixed text (``USA``, ``NASA``, ``HD``) is an acronym and is kept;
- a word with a digit is a code (``DSC03575``, ``MP3``, ``A380``): never folded, and its letters
  do not count as shouting (``DSC03575.JPG`` is a camera's file name, left as it is).

Folding only lowers letters (``ZORBLAX`` -> ``Zorblax``, ``O'BRIEN'S`` -> ``O'brien's``): the text's
characters, length and lower-cased form are unchanged, and folding twice is folding once.
"""

from __future__ import annotations

import re
from typing import Literal

PromptCase = Literal["keep", "fold_shouting"]
PROMPT_CASES: tuple[str, ...] = ("keep", "fold_shouting")
SHOUTED_SHARE = 0.6
MIN_LETTERS = 4

# A word: letters, digits and inner apostrophes (O'BRIEN'S). Upper-case: at least two cased
# letters, none of them lower case.
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
# Between two words of a run: spaces and light punctuation, no sentence break.
_RUN_GAP = re.compile(r"[\s\-–—,&/|:+]*")


def _is_upper_word(word: str) -> bool:
    """Two cased letters or more, none lower case, and no digit (``DSC03575``, ``MP3``, ``A380``
    are codes, written as they are)."""
    if any(c.isdigit() for c in word):
        return False
    cased = [c for c in word if c.isupper() or c.islower()]
    return len(cased) >= 2 and all(c.isupper() for c in cased)


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
    counting the letters of words without digits (a camera's ``DSC03575.JPG`` is not shouting)."""
    letters = "".join(m.group(0) for m in _WORD.finditer(text) if not any(c.isdigit() for c in m.group(0)))
    upper = sum(c.isupper() for c in letters)
    lower = sum(c.islower() for c in letters)
    return upper + lower >= MIN_LETTERS and upper >= SHOUTED_SHARE * (upper + lower)


def fold_shouting(text: str) -> str:
    """``text`` with its shouted words capitalised (module docstring); anything else unchanged."""
    words = list(_WORD.finditer(text))
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


def prompt_text(text: str, case: PromptCase) -> str:
    """The prompt a captioner reads for ``text`` under its ``prompt_case``."""
    return fold_shouting(text) if case == "fold_shouting" else text
