"""Recording the warnings curate and its plugins give while a command or a call runs, as they are
shown, for ``curate run --json``'s ``warnings`` (:mod:`curate.jsonsummary`) and :attr:`curate.Run.warnings`.

Both kinds: Python warnings of a curate category (a step recomputed, a stale output), recorded as
they are shown (those your warning filters hide are not), and records logged at WARNING or above
(a plugin's ``download: … refused``), which still reach the handlers they reached before.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any


def record_warnings(into: list[str]) -> Callable[[], None]:
    """Append each warning shown from now on to ``into``; returns what stops it."""
    previous = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        if category.__module__.split(".")[0].startswith("curate"):  # curate's and its plugins'
            into.append(str(message))
        previous(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    root = logging.getLogger()
    handler = _LogRecorder(into, echo=not root.handlers)
    root.addHandler(handler)

    def stop() -> None:
        warnings.showwarning = previous
        root.removeHandler(handler)

    return stop


class _LogRecorder(logging.Handler):
    """Records warnings logged by curate and its plugins; ``echo``: also prints them as Python's
    last-resort handler would have (this handler being there keeps that one from running)."""

    def __init__(self, into: list[str], echo: bool):
        super().__init__(logging.WARNING)
        self.into = into
        self.echo = echo

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.into.append(record.getMessage())
        except Exception:  # noqa: BLE001 - a plugin's bad format arguments: logging's own report
            self.handleError(record)
        last = logging.lastResort
        if self.echo and last is not None and record.levelno >= last.level:
            last.handle(record)
