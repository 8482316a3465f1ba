"""One run at a time per run directory and per store.

Two ``curate run`` on one run directory (or two run directories sharing a ``cache_dir`` store)
deleted each other's ``.partial`` directories and published a step cut in half. A run now holds
an exclusive ``flock`` on ``<dir>/.curate.lock`` for its whole length; the file says who holds
it (pid, host, start time, command) so the second run can name the holder.

``flock`` is released by the kernel when the holder dies, so a lock left by a killed run is
taken over at once (and said so). A lock still held while its pid is gone on this host (a forked
child kept the descriptor) is broken by replacing the file.

A store may be shared by several users (a group folder, umask 002). The lock file is created
with the permissions the umask allows, as any file; one this user may only read (another user's,
or from a curate that made them 0644) still names its holder and can be waited for, and one left
by a run that no longer runs is replaced where the folder allows, else named with its owner.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from curate.display import visible
from curate.errors import RunDirError, RunLockedError
from curate.runfiles import json_value, read_text
from curate.users import me, owner

LOCK_NAME = ".curate.lock"
COMMAND_LIMIT = 300  # characters of the holder's command line kept in the lock file
POLL_SECONDS = 0.2
SHARING = ("users who share a store should share a group and run with umask 002 in a setgid folder "
           "(chmod g+ws), so that each may take the others' locks")


def _me() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "user": me(),
        "host": socket.gethostname(),
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv)[:COMMAND_LIMIT],
    }


def _read_holder(path: Path) -> dict[str, Any] | None:
    try:
        text = read_text(path)
    except (OSError, ValueError):  # gone, not a file, not text: no holder this can name
        return None
    try:
        holder = json_value(text) if text.strip() else None
    except ValueError:
        return None
    return holder if isinstance(holder, dict) else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (a zombie does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _mode(path: Path) -> str:
    try:
        return stat.filemode(os.lstat(path).st_mode)
    except OSError:
        return "gone"


def describe(holder: dict[str, Any] | None) -> str:
    """Who holds a lock, from its file. A run directory may come from someone else, and this is
    printed as it stands (the notice of a lock taken over): each field is shown with its control
    characters as escapes (an ESC sequence in 'host' cleared the screen) and cut to its length in
    a file curate writes."""
    if not holder:
        return "another process (it has not written its name yet)"

    def field(name: str, limit: int = 100) -> str:
        text = visible(holder.get(name))
        return text if len(text) <= limit else text[:limit] + "…"

    user = f" by user {field('user')}" if holder.get("user") else ""
    return (f"pid {field('pid')} on host {field('host')}, started {field('started_at')}{user}"
            + (f" ({field('command', COMMAND_LIMIT)})" if holder.get("command") else ""))


def held(directory: Path) -> bool:
    """Whether a live process holds ``directory``'s lock now (a run's lock is released, by the
    kernel too, the moment its process ends however it ends); opens nothing for writing."""
    path = Path(directory) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def holder_of(directory: Path) -> dict[str, Any] | None:
    """What the live process holding ``directory``'s lock wrote of itself (``{}`` if unreadable),
    or None when no process holds it; opens nothing for writing."""
    if not held(directory):
        return None
    return _read_holder(Path(directory) / LOCK_NAME) or {}


def in_use(what: str, directory: Path, holder: dict[str, Any] | None) -> str:
    """The words for ``what`` ("run directory") at ``directory`` being held by ``holder``."""
    return f"{what} {directory} is in use by another curate run: {describe(holder)}"


class DirectoryLock:
    """An exclusive lock on a directory; ``what`` names it in messages ("run directory")."""

    def __init__(self, directory: Path, what: str):
        self.directory = Path(directory)
        self.what = what
        self.path = self.directory / LOCK_NAME
        self.fd: int | None = None

    def acquire(self, wait: float | None = 0, say: Callable[[str], None] | None = None) -> None:
        """Take the lock. ``wait``: seconds to wait for a holder (None: forever, 0: refuse at once)."""
        say = say or (lambda message: print(message, file=sys.stderr))
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise RunDirError(f"the {self.what} {self.directory} cannot be created: it, or a folder above it, is a "
                              "file", "move that file away, or point the run elsewhere") from None
        deadline = None if wait is None else time.monotonic() + wait
        waiting_said = False
        while True:
            try:
                # 0o666 less the umask, as any file: a store shared by a group (umask 002 in a setgid
                # folder) gets a lock its other users may take; 0o644 made them "Permission denied".
                fd, writable = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666), True
            except IsADirectoryError:
                raise RunDirError(f"the lock file {self.path} of the {self.what} is a folder",
                                  f"remove it (rm -r '{self.path}'): curate keeps a file there while a run "
                                  "holds the directory") from None
            except PermissionError as error:  # another user's: it can still say who holds it
                fd, writable = self._open_read_only(error), False
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                holder = _read_holder(self.path)
                if self._dead_on_this_host(holder):
                    say(f"curate: breaking the lock on {self.what} {self.directory}: its holder, "
                        f"{describe(holder)}, is no longer running")
                    self._remove_left(holder)
                    continue
                if deadline is not None and time.monotonic() >= deadline:
                    raise RunLockedError(
                        in_use(self.what, self.directory, holder),
                        "wait for that run to finish (or stop it), or pass --wait to queue behind it; "
                        "two runs writing one directory publish each other's half-written steps",
                    )
                if not waiting_said:
                    say(f"curate: waiting for {self.what} {self.directory}, in use by {describe(holder)}")
                    waiting_said = True
                time.sleep(POLL_SECONDS)
                continue
            except OSError:  # read-only, where flock needs a writable descriptor (NFS)
                os.close(fd)
                raise self._not_ours(_read_holder(self.path), "may not write it") from None
            if not self._still_current(fd):  # replaced by a breaker between our open and flock
                os.close(fd)
                continue
            previous = _read_holder(self.path)
            if not writable:  # no run holds it, and this user may not write it: put a new one in its place
                whose = owner(self.path)
                try:
                    self._remove_left(previous)
                finally:
                    os.close(fd)
                say(f"curate: replaced the lock file of {self.what} {self.directory}, which user {whose}'s "
                    f"run left and no longer runs: {describe(previous)}")
                continue
            if previous:
                say(f"curate: taking over the lock on {self.what} {self.directory} left by a run that "
                    f"no longer runs: {describe(previous)}")
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(_me()).encode(), 0)
                os.fsync(fd)
            except OSError as error:  # a full disk, mostly: said with the file's name (curate.cli)
                with contextlib.suppress(OSError):
                    if self._still_current(fd):
                        self.path.unlink()
                os.close(fd)
                raise OSError(error.errno, error.strerror, str(self.path)) from error
            self.fd = fd
            return

    def _open_read_only(self, error: PermissionError) -> int:
        """The lock file opened for reading, where this user may not write it (another user's, made
        before curate created locks with the umask's permissions); ``error`` is raised where there
        is no file (the folder is not this user's to write), and a clear error where it cannot be
        read either (who holds it cannot be told)."""
        try:
            return os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            raise error from None
        except PermissionError:
            raise self._not_ours(None, "may neither read nor write it") from None

    def _not_ours(self, holder: dict[str, Any] | None, may_not: str) -> RunLockedError:
        mode = _mode(self.path)
        whose = owner(self.path)
        return RunLockedError(
            f"cannot tell whether {self.what} {self.directory} is in use: its lock file {self.path} belongs "
            f"to user {whose} ({mode}), and user {me()} {may_not}"
            + (f"; it names {describe(holder)}" if holder else ""),
            f"once no run of user {whose} uses it, they (or anyone who may write {self.directory}) can "
            f"remove it (rm '{self.path}'); {SHARING}")

    def _remove_left(self, holder: dict[str, Any] | None) -> None:
        """Remove the lock file a run that no longer runs left (``holder``), or say whose it is."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except PermissionError:
            whose = owner(self.path)
            raise RunLockedError(
                f"{self.what} {self.directory} is locked by a run that no longer runs ({describe(holder)}): "
                f"its lock file {self.path} belongs to user {whose} ({_mode(self.path)}), and user {me()} "
                "may neither write nor remove it",
                f"user {whose}, or anyone who may write {self.directory}, can remove it (rm '{self.path}'); "
                f"{SHARING}") from None

    def _still_current(self, fd: int) -> bool:
        try:
            return os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            return False

    @staticmethod
    def _dead_on_this_host(holder: dict[str, Any] | None) -> bool:
        if not holder or holder.get("host") != socket.gethostname():
            return False
        pid = holder.get("pid")
        return isinstance(pid, int) and pid != os.getpid() and not pid_alive(pid)

    def release(self) -> None:
        if self.fd is None:
            return
        # Unlinked while still held, so a waiter that opened this file finds it replaced and retries.
        with contextlib.suppress(FileNotFoundError):
            if self._still_current(self.fd):
                self.path.unlink()
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


@contextlib.contextmanager
def locked(directories: list[tuple[Path, str]], wait: float | None = 0,
           say: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the locks of ``directories`` (in this order, so two runs cannot deadlock)."""
    held: list[DirectoryLock] = []
    seen: set[Path] = set()
    try:
        for directory, what in directories:
            key = Path(directory).resolve()
            if key in seen:
                continue
            seen.add(key)
            lock = DirectoryLock(key, what)
            lock.acquire(wait, say)
            held.append(lock)
        yield
    finally:
        for lock in reversed(held):
            lock.release()
