"""The world's errors belong to curate's one error family, so the CLI prints them without a traceback."""

from __future__ import annotations

from curate.errors import CurateError


class WorldError(CurateError):
    """A world cannot be generated, loaded or served as asked; the hint says how to fix it."""

    exit_code = 2


class WorldPortError(WorldError):
    """The world's server cannot listen where it was asked."""
