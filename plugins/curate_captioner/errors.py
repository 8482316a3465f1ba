"""The captioner's errors: a CurateError, so the CLI prints them without a traceback."""

from __future__ import annotations

from curate.errors import CurateError


class CaptionerError(CurateError):
    """A captioner cannot be built, loaded, trained or run as asked; the hint says what to do."""


class RefusedFile(CaptionerError):
    """A file given or found is not what it must be (a pickle where only tensors may be, a decoder
    folder without its tokenizer): bad input, refused before anything in it runs."""

    exit_code = 2
