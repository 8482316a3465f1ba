"""Which run directories use a store, recorded in the store itself: ``curate gc`` deletes no folder
another run directory needs.

A store is a run directory's own ``store/``, or one named by ``run.cache_dir`` that any number of
run directories share, and nothing in a step folder says whose it is. So every run registers its
run directory in its store: ``<store>/.curate-runs/<digest of the run directory>.json`` says where
the run directory is, from which host and user it last ran, and every step folder it has used
there, with the step's label and when it last used it (``used``: kept when the spec changes, so
a folder a run directory no longer needs is known to be its, and gc can say what it was and when
it was last used).

A run writes its own file only (whole, by a rename), while it holds the store's lock, so runs
that share a store never write one file at once, and gc, which holds the lock too, reads them all
as they stand. A curate from before 2026-12-08 registers nothing: folders no registration names
are treated as unknown (:mod:`curate.gc`). The files are read as written by anyone who may write
the store: their fields are checked, and a path they name is only ever read (a manifest).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.atomic import write_text_atomic
from curate.runfiles import read_json
from curate.users import me

REGISTRY = ".curate-runs"  # in the store; never a step folder's name (those are 20 hex digits)
REGISTRATION_LIMIT = 16 << 20  # a few hundred bytes per step folder used


class StoreRegistrationWarning(UserWarning):
    """A run could not record its run directory in its store (``curate gc`` then cannot know it)."""


@dataclass
class Registration:
    """One run directory's record in a store (as read: any field may be missing or wrong)."""

    path: Path  # the registration file
    run_dir: str | None
    host: str | None = None
    user: str | None = None
    last_run: str | None = None
    store_dir: str | None = None
    used: dict[str, dict[str, Any]] = field(default_factory=dict)  # fingerprint -> {label, step, last_used}
    problem: str | None = None  # why the file cannot be read as a registration

    def describe(self) -> str:
        who = f" by user {self.user}" if self.user else ""
        where = f" on host {self.host}" if self.host else ""
        return f"last run {self.last_run or '(unknown)'}{who}{where}"


def registration_path(store_dir: Path, run_dir: Path) -> Path:
    digest = hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:20]
    return Path(store_dir) / REGISTRY / f"{digest}.json"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def register(store_dir: Path, run_dir: Path, steps: list[tuple[str, str, str]]) -> None:
    """Record that ``run_dir`` uses ``store_dir`` now, with its steps ``(fingerprint, label, step)``.
    Called while the run holds the store's lock. A store this user cannot write here is a warning
    (the run itself goes on: it is gc that would not know this run directory)."""
    path = registration_path(store_dir, run_dir)
    now = _now()
    previous = read_registration(path) if path.exists() else None
    used = dict(previous.used) if previous is not None and previous.problem is None else {}
    for fingerprint, label, step in steps:
        used[fingerprint] = {"label": label, "step": step, "last_used": now}
    record = {"run_dir": str(Path(run_dir).resolve()), "store_dir": str(Path(store_dir).resolve()),
              "host": socket.gethostname(), "user": me(), "last_run": now, "used": dict(sorted(used.items()))}
    try:
        if path.parent.is_symlink() or (path.parent.exists() and not path.parent.is_dir()):
            raise OSError(f"{path.parent} is not a folder of curate's (a link, or a file): remove it")
        path.parent.mkdir(exist_ok=True)
        write_text_atomic(path, json.dumps(record, indent=1, sort_keys=True))
    except OSError as error:
        warnings.warn(f"could not record run directory {run_dir} in its store's {path.parent} "
                      f"({_why(error, path.parent)}): `curate gc` on another run directory sharing this store "
                      f"cannot know that this one uses it; let the store's users write {path.parent} (a group "
                      "folder, umask 002)", StoreRegistrationWarning, stacklevel=2)


def _why(error: OSError, folder: Path) -> str:
    """Why a registration could not be written, in words: whose folder it is, where that is why."""
    import errno
    import stat

    from curate.users import owner

    if error.errno in (errno.EACCES, errno.EPERM) and folder.exists():
        return (f"it belongs to user {owner(folder)} ({stat.filemode(folder.stat().st_mode)}), and user {me()} "
                "may not write in it")
    return str(error.strerror or error)


def read_registration(path: Path) -> Registration:
    """A registration file as it stands; ``problem`` says why it is not one curate writes."""
    try:
        data = read_json(path, REGISTRATION_LIMIT)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        return Registration(path, None, problem=f"cannot be read ({error})")
    if not isinstance(data, dict) or not isinstance(data.get("run_dir"), str) or not data["run_dir"]:
        return Registration(path, None, problem="names no run directory")
    used = data.get("used")
    if not isinstance(used, dict) or not all(isinstance(v, dict) for v in used.values()):
        used = {}

    def text(name: str) -> str | None:
        value = data.get(name)
        return value if isinstance(value, str) else None

    return Registration(path, data["run_dir"], host=text("host"), user=text("user"), last_run=text("last_run"),
                        store_dir=text("store_dir"), used=used)


def registrations(store_dir: Path) -> list[Registration]:
    """Every registration in ``store_dir`` (none for a store no curate since 2026-12-08 ran in)."""
    folder = Path(store_dir) / REGISTRY
    if not folder.is_dir() or folder.is_symlink():
        return []
    return [read_registration(path) for path in sorted(folder.glob("*.json")) if not path.name.startswith(".")]


def forget_folders(registration: Registration, fingerprints: set[str]) -> None:
    """Drop deleted step folders from a registration's ``used`` (under the store's lock)."""
    if registration.problem is not None or not fingerprints & set(registration.used):
        return
    data = read_json(registration.path, REGISTRATION_LIMIT)
    data["used"] = {fp: entry for fp, entry in data.get("used", {}).items() if fp not in fingerprints}
    write_text_atomic(registration.path, json.dumps(data, indent=1, sort_keys=True))


def moved_registration(store_dir: Path, old_run: Path, new_run: Path) -> None:
    """``curate relocate``: the run directory registered at ``old_run`` now lies at ``new_run``.
    Its record is written under the new place first, then the old one removed when nothing is
    there any more (a copy keeps both), so a gc reading the store meanwhile finds at least one."""
    old = next((reg for reg in registrations(store_dir)
                if reg.problem is None and reg.run_dir == str(old_run)), None)
    if old is None:
        return
    data = read_json(old.path, REGISTRATION_LIMIT)
    target = registration_path(store_dir, new_run)
    if target.exists():
        current = read_registration(target)
        data["used"] = {**data.get("used", {}), **(current.used if current.problem is None else {})}
    data.update(run_dir=str(Path(new_run).resolve()), store_dir=str(Path(store_dir).resolve()))
    try:
        write_text_atomic(target, json.dumps(data, indent=1, sort_keys=True))
        if not Path(old_run).exists():
            os.unlink(old.path)
    except OSError as error:
        warnings.warn(f"could not record run directory {new_run} (moved from {old_run}) in its store's "
                      f"{target.parent} ({error.strerror or error}): its next run does", StoreRegistrationWarning,
                      stacklevel=2)


def forget(registration: Registration) -> None:
    """Remove a run directory's registration (``curate gc --forget``: it is gone for good)."""
    os.unlink(registration.path)
