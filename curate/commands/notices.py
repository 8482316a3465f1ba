"""How :func:`curate.cli.main` prints what is no command's output: curate's warnings and the log
records no handler takes as one line each, the styling of errors, and the words for a stopped run."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import click

from curate.display import VisibleFormatter, visible
from curate.errors import stop_words


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """curate's own warnings (a plugin skipped, a stored step recomputed) as one line, as its other
    notices are; Python's format added the file, line and source line of the warn() call."""
    if category.__module__.split(".")[0].startswith("curate"):
        click.echo(f"curate: warning: {visible(message, lines=True)}", err=True)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def _last_resort() -> logging.Handler:
    """Python's handler for records no handler takes (plugins' warnings: ``download: … refused``),
    the same but for :class:`curate.display.VisibleFormatter`."""
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(VisibleFormatter())
    return handler


def _red() -> dict[str, Any]:
    """click.secho's styling of error text: none where NO_COLOR is set to anything
    (https://no-color.org), as rich's output already honours; it coloured it on a terminal regardless
    (and without a colour it still added a reset escape)."""
    import os

    return {"reset": False} if os.environ.get("NO_COLOR") else {"fg": "red"}


def _stopped_by(exc: KeyboardInterrupt) -> str:
    if getattr(exc, "after_complete", False):  # outputs and manifest written: only the report was not
        return f"{stop_words(exc)} while reporting on the run, which had completed (its outputs are " \
            "written); run the same command again to write its report"
    resume = getattr(exc, "curate_resume", "run the same command again to resume")
    return f"{stop_words(exc)}; {resume}"
