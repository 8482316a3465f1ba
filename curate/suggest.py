""""Did you mean …?" for unknown names: one fuzzy match, one wording, everywhere."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, choices: Iterable[str], n: int = 1) -> list[str]:
    """Up to ``n`` of ``choices`` that look like ``word``, best first (difflib ratio ≥ 0.6)."""
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=0.6)


def did_you_mean(word: str, choices: Iterable[str], otherwise: str | None = None) -> str | None:
    """``"did you mean 'x'?"`` for the closest choice; ``otherwise`` when none is close."""
    close = closest(word, choices)
    return f"did you mean '{close[0]}'?" if close else otherwise
