"""A positive number from an environment variable (a deadline, a rate), or its default; a value
that is not a number in (0, most] is an error naming the variable, what it holds and the default."""

from __future__ import annotations

import os

from curate.errors import CurateError


def positive_number(variable: str, default: float, most: float, unit: str = "seconds",
                    error: type[CurateError] = CurateError) -> float:
    """``variable``'s value as a number of ``unit`` in (0, ``most``], or ``default`` when it is unset;
    anything else raises ``error`` (NaN and infinity included)."""
    text = os.environ.get(variable)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= most:
        raise error(f"{variable}={text!r} is not a number of {unit} in (0, {most:g}]",
                    f"set it to a number of {unit}, or unset it for {default:g}")
    return value
