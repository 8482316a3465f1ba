"""Signals that stop a run (SIGINT, SIGTERM, SIGHUP): a stop is a stop wherever it lands.

A signal that landed while DuckDB ran a query was lost or turned into a failure: DuckDB's Python
client runs the handler, drops the exception it raises and lets the query run on (a SIGTERM took
17 s to act), then raises ``RuntimeError: Query interrupted``, which the run reported as a plugin's
failure (exit 1) or swallowed (exit 0, status complete). The handler here also interrupts every
DuckDB connection curate opened (:func:`watch`), so the query stops at once, and remembers the
signal, so whatever the query raises afterwards is reported as the stop it is (:func:`as_stop`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import weakref
from collections.abc import Iterator
from typing import Any

from curate.errors import Terminated

_connections: dict[int, weakref.ref[Any]] = {}
_received: list[int] = []  # the first stopping signal this process was sent


def watch(con: Any) -> Any:
    """``con`` (a DuckDB connection or cursor), interrupted when a stopping signal comes."""
    key = id(con)
    _connections[key] = weakref.ref(con, lambda _ref, key=key: _connections.pop(key, None))
    return con


def interrupt_all() -> None:
    """Interrupt the query of every watched connection (a connection that runs none ignores it)."""
    for ref in _connections.copy().values():  # dict.copy is atomic: other threads may add meanwhile
        con = ref()
        if con is not None:
            try:
                con.interrupt()
            except Exception:  # noqa: BLE001, S110 - a closed connection has nothing to stop
                pass


def stop_exception(signum: int) -> KeyboardInterrupt:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def _stop(signum: int, frame: Any) -> None:
    if not _received:
        _received.append(signum)
    interrupt_all()
    raise stop_exception(_received[0])


def install() -> None:
    """Handle SIGTERM and SIGHUP, and SIGINT unless this process was started with it ignored
    (``nohup``, or ``&`` in a script: the starter asked for it to be ignored, as Python honours)."""
    signal.signal(signal.SIGTERM, _stop)
    for signum in (signal.SIGINT, signal.SIGHUP):
        if signal.getsignal(signum) not in (signal.SIG_IGN, None):
            signal.signal(signum, _stop)


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Stopping signals handled as :func:`install` handles them, for the length of the block (an
    in-process run, :func:`curate.run`), and the handlers found put back after it: SIGINT unless
    it is ignored, and SIGTERM and SIGHUP only where nothing handles them (their default kills the
    process; a host's own handler, an orchestrator's, stays). The block starts and ends with no
    signal received, so a run stopped by Ctrl-C does not stop the next one. Only the main thread
    may set handlers: in another thread nothing is installed, and a stop comes as its host raises it."""
    _received.clear()
    installed: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            current = signal.getsignal(signum)
            if current in (signal.SIG_IGN, None) or (signum != signal.SIGINT and current is not signal.SIG_DFL):
                continue
            installed[signum] = current
            signal.signal(signum, _stop)
    try:
        yield
    finally:
        for signum, previous in installed.items():
            signal.signal(signum, previous)
        _received.clear()


def received() -> int | None:
    return _received[0] if _received else None


def check() -> None:
    """Raise the stop if a signal came and something (a library catching every error) dropped it."""
    if _received:
        raise stop_exception(_received[0])


def as_stop(exc: BaseException) -> KeyboardInterrupt | None:
    """The stop that ``exc`` stands for: after a stopping signal, any error (DuckDB's ``Query
    interrupted``, a step's failure wrapping it) is the stop's doing; None when it is not one."""
    if not _received or isinstance(exc, KeyboardInterrupt) or isinstance(exc.__cause__, KeyboardInterrupt):
        return None
    return stop_exception(_received[0])
