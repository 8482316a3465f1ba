""""Did you mean …?" for unknown names: one fuzzy match, one wording, everywhere."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from curate.display import hidden_characters, visible_name


def closest(word: str, choices: Iterable[str], n: int = 1) -> list[str]:
    """Up to ``n`` of ``choices`` that look like ``word``, best first (difflib ratio ≥ 0.6)."""
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=0.6)


def did_you_mean(word: str, choices: Iterable[str], otherwise: str | None = None) -> str | None:
    """``"did you mean 'x'?"`` for the closest choice; ``otherwise`` when none is close."""
    close = closest(word, choices)
    if not close:
        return otherwise
    hidden = hidden_characters(close[0])
    note = f", which holds {' and '.join(hidden)} (not shown where it is printed)" if hidden else ""
    return f"did you mean '{visible_name(close[0])}'{note}?"
