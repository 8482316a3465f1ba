"""A JSON Lines file handed to one of ``curate_basics``' line checkers (``RepeatedKeys``,
``LoneSurrogates``) as the source's scans hand it: each line parsed (None where it is no JSON
object), ``block`` lines at a time, with the end offset of what was read."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any


def first_found(path, checker_of: Callable[[Any], Any], block: int, shared: bool = False,
                load: Callable[[bytes], object] = json.loads) -> tuple[int, Any] | None:
    """What the checker ``checker_of(handle)`` says first of the file at ``path``, or None
    (``shared``: handed each block's bytes too, as ``curate_basics.locate`` hands them; ``load``:
    how a line is parsed)."""
    with open(path, "rb") as handle:
        checker, read, parsed, start = checker_of(handle), 0, [], 0

        def check() -> tuple[int, Any] | None:
            nonlocal start
            data = os.pread(handle.fileno(), read - start, start) if shared else None
            start = read
            return checker.check(parsed, read, data)

        for raw in handle:
            read += len(raw)
            try:
                value = load(raw)
            except json.JSONDecodeError:
                value = None
            parsed.append(value if isinstance(value, dict) else None)
            if len(parsed) == block:
                if (found := check()) is not None:
                    return found
                parsed = []
        return check()
