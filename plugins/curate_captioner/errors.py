"""The captioner's errors: a CurateError, so the CLI prints them without a traceback."""

from __future__ import annotations

from curate.errors import CurateError


class CaptionerError(CurateError):
    """A captioner cannot be built, loaded, trained or run as asked; the hint says what to do."""
