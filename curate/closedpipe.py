"""A reader that closes curate's stdout early (``curate inspect R | head -1``, ``| grep -q x``).

rich and click each turned the EPIPE into exit 1, the code of a failed run, so a pipeline under
``set -o pipefail`` failed at random: whenever the reader closed before curate's last write. The
CLI ends such a command quietly with exit 0, not 141 (what a process killed by SIGPIPE reports):
under ``pipefail`` 141 fails the pipeline just as 1 does, and the reader closing means it has
what it wanted. Only stdout counts: a broken stderr, or a pipe of a step's own, is an error.
"""

from __future__ import annotations

import os
import select
import sys
from typing import Any

from rich.console import Console

CLOSED = {"stdout": False}  # set by StdoutConsole when rich met the closed pipe (it then hides it)


def stdout_closed() -> bool:
    """Whether stdout was found closed by its reader: said by rich, or seen now (a pipe whose
    read end is closed polls as POLLERR)."""
    if CLOSED["stdout"]:
        return True
    try:
        fd = sys.__stdout__.fileno()  # type: ignore[union-attr]
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, ValueError, OSError):
        return False


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at exit does not meet the closed pipe again
    ("Exception ignored … BrokenPipeError" and exit 120)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.__stdout__.fileno())  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        pass
    finally:
        os.close(devnull)


class StdoutConsole(Console):
    """rich's console for stdout that records a closed stdout before rich's own handling (which
    points stdout at /dev/null and raises SystemExit(1)), so that the CLI knows the exit is not a
    failure."""

    def on_broken_pipe(self) -> Any:
        CLOSED["stdout"] = True
        return super().on_broken_pipe()
