"""``curate gc RUN_DIR``: the step folders of a run's store that no run directory needs any more.

Every change of a step's params, code version or input is a new folder in the store, and nothing
removed the old ones. A folder is *referenced* when the manifest of a run directory using the
store names it: the run directory's last run (finished, failed or stopped: its manifest lists
every step it planned, written before any step runs), and each other run directory registered in
the store (:mod:`curate.storeusers`) whose manifest names this store; or when a step of those runs
names a path inside it in its params (realign's ``model``: a captioner a training step left in its
folder's artifacts). gc lists the rest, with
their sizes and when a run last used them, and deletes them only when asked (``delete``), holding
the run directory's and the store's locks from the listing to the last deletion: a run that holds
either is refused, named by the lock, and no run starts meanwhile, so no folder being written is
touched (a ``<fingerprint>.partial`` folder is what a stopped run left; the next run starts it over).

What gc cannot know, it keeps or refuses:

- a registered run directory that cannot be read here (gone, moved, on another host, a damaged
  manifest), or whose last run names a store that is not there (this store moved, and it was not
  relocated yet), or one another host registered whose path here holds another run directory (its
  last run is not the one registered: node-local run directories, one path on every node): nothing is deleted until it is readable again or forgotten (``forget``: gone for
  good);
- in a shared store (a ``run.cache_dir``, or a store another run directory registered in), a
  folder no registration has used: written before run directories were registered (2026-12-08)
  or by a curate that does not register them, for a run directory gc cannot see; kept, unless
  ``all_registered`` says every run directory that uses the store has registered (run since).
  In a run directory's own ``store/`` with no other registration, such folders are its own
  leftovers (an upgrade's, mostly), and removed;
- anything in the store that is not a step folder (its name is not a fingerprint, or it is a
  link): left alone.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import CurateError, RunDirError, UsageError
from curate.lock import LOCK_NAME, locked
from curate.removal import remove_folder, removal_problem
from curate.runfiles import COMPLETE
from curate.runstore import read_manifest
from curate.storeusers import (
    REGISTRY,
    Registration,
    StoreRegistrationWarning,
    forget,
    forget_folders,
    registrations,
)

STEP_FOLDER = re.compile(r"[0-9a-f]{20}")
PARTIAL_FOLDER = re.compile(r"([0-9a-f]{20})\.partial")
UNKNOWN = ("no run directory registered in this store has used it: it was written before curate registered "
           "the run directories that use a store (2026-12-08), or by a curate that does not, so a run directory "
           "gc cannot see may need it (--all-registered: every run directory using this store has run since)")


@dataclass
class Folder:
    """A step folder no run directory references."""

    name: str
    path: Path
    bytes: int
    finished: bool  # its _COMPLETE.json is there
    partial: bool  # a <fingerprint>.partial folder a stopped run left
    label: str | None = None
    step: str | None = None
    last_used: str | None = None
    last_used_from: str = "written"  # "registry": a run's; "written": the folder's newest time
    used_by: list[str] = field(default_factory=list)
    kept_because: str | None = None  # None: removable
    deleted: bool = False

    def answer(self) -> dict[str, Any]:
        action = "deleted" if self.deleted else "keep" if self.kept_because else "delete"
        return {"folder": self.name, "path": str(self.path), "label": self.label, "step": self.step,
                "bytes": self.bytes, "finished": self.finished, "partial": self.partial,
                "last_used": self.last_used, "last_used_from": self.last_used_from, "used_by": self.used_by,
                "action": action, "kept_because": self.kept_because}


@dataclass
class RunDirUse:
    """A run directory that uses (or used) the store, and what gc learnt of it."""

    run_dir: str
    state: str  # "this run directory", "uses this store", "uses another store", "cannot be read", "forgotten"
    referenced: int = 0
    detail: str | None = None
    registration: Registration | None = None

    def answer(self) -> dict[str, Any]:
        reg = self.registration
        return {"run_dir": self.run_dir, "state": self.state, "referenced": self.referenced, "detail": self.detail,
                "last_run": reg.last_run if reg else None, "host": reg.host if reg else None,
                "user": reg.user if reg else None}


@dataclass
class Survey:
    run_dir: Path
    store_dir: Path
    own_store: bool
    shared: bool
    run_dirs: list[RunDirUse]
    referenced: dict[str, list[str]]  # fingerprint -> the run directories that reference it
    folders: list[Folder]  # unreferenced
    blocked: list[str]  # why nothing may be deleted
    left_alone: list[str]  # entries of the store that are not step folders
    deleted: bool = False
    forgotten: list[str] = field(default_factory=list)

    @property
    def removable(self) -> list[Folder]:
        return [f for f in self.folders if f.kept_because is None]

    def answer(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "store_dir": str(self.store_dir), "own_store": self.own_store,
                "shared": self.shared, "deleted": self.deleted,
                "run_dirs": [use.answer() for use in self.run_dirs],
                "referenced": len(self.referenced),
                "folders": [folder.answer() for folder in self.folders],
                "bytes": sum(f.bytes for f in self.removable),
                "freed_bytes": sum(f.bytes for f in self.folders if f.deleted),
                "blocked": self.blocked, "forgotten": self.forgotten, "left_alone": self.left_alone}


def collect(run_dir: Path, *, delete: bool = False, forget_run_dirs: tuple[str, ...] = (),
            all_registered: bool = False, wait: float | None = 0) -> Survey:
    """List ``run_dir``'s store's unreferenced step folders and, with ``delete``, remove the ones
    gc may (all of them, or none and a :class:`RunDirError`), holding both locks throughout."""
    run_dir = Path(run_dir).resolve()
    store_dir = _store_of(run_dir, read_manifest(run_dir))
    directories = [(run_dir, "run directory")] + ([(store_dir, "store")] if store_dir.is_dir() else [])
    with locked(directories, wait=wait):
        manifest = read_manifest(run_dir)  # again, under the lock: a run may have ended meanwhile
        if _store_of(run_dir, manifest) != store_dir:
            raise RunDirError(f"the run directory {run_dir} changed stores while gc waited for its lock (its last "
                              f"run used {manifest.get('store_dir')})", "run gc again")
        survey = _survey(run_dir, store_dir, manifest, forget_run_dirs, all_registered)
        if delete:
            _delete(survey)
    return survey


def _store_of(run_dir: Path, manifest: dict[str, Any]) -> Path:
    recorded, store = manifest.get("run_dir"), manifest.get("store_dir")
    if not isinstance(store, str) or not Path(store).is_absolute():
        raise RunDirError(f"the manifest of {run_dir} names no store ({store!r})",
                          "run its spec again into it (finished steps are reused), then gc")
    if isinstance(recorded, str) and Path(recorded).resolve() != run_dir:
        raise RunDirError(f"{run_dir} was written at {recorded}, and its manifest still names the store and step "
                          "folders there: gc would judge the wrong store",
                          f"point it at where it lies now first: curate relocate {run_dir}")
    return Path(store)


def _fingerprints(manifest: dict[str, Any], store_dir: Path) -> set[str]:
    """The step folders of ``store_dir`` that ``manifest`` names."""
    out = set()
    for record in manifest.get("steps", []):
        if not isinstance(record, dict):
            continue
        fingerprint = record.get("fingerprint")
        path = record.get("path")
        if isinstance(path, str) and _same(Path(path).parent, store_dir):
            out.add(Path(path).name)
        elif isinstance(fingerprint, str):
            out.add(fingerprint)
    return out


def _named_in_params(manifest: dict[str, Any], store_dir: Path) -> set[str]:
    """The step folders of ``store_dir`` that ``manifest``'s steps name by path in their params
    (realign's ``model``: a captioner a training step left in its folder's artifacts; a query that
    reads another step's files), whatever store that run directory itself uses."""
    import json

    params = [record.get("params") for record in manifest.get("steps", []) if isinstance(record, dict)]
    try:
        text = json.dumps(params, ensure_ascii=False)
    except (TypeError, ValueError):
        return set()
    out = set()
    for prefix in {str(store_dir), os.path.realpath(store_dir)}:
        named = re.escape(json.dumps(prefix.rstrip("/"), ensure_ascii=False)[1:-1])
        out.update(re.findall(named + r"/([0-9a-f]{20})(?![0-9a-f])", text))
    return out


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a folder above it this user may not search: another user's run directory
        return False


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def _survey(run_dir: Path, store_dir: Path, manifest: dict[str, Any], forget_run_dirs: tuple[str, ...],
            all_registered: bool) -> Survey:
    own_store = _same(store_dir, run_dir / "store")
    found = registrations(store_dir) if store_dir.is_dir() else []
    forgotten = {str(Path(path).expanduser().resolve()) for path in forget_run_dirs}
    if str(run_dir) in forgotten:
        raise UsageError(f"--forget {run_dir}: that is the run directory gc looks at, and it uses this store: it "
                         "cannot be forgotten", "forget only a registered run directory that is gone")
    referenced: dict[str, list[str]] = {}
    uses = [RunDirUse(str(run_dir), "this run directory", registration=_registration_of(found, run_dir))]
    for fingerprint in _fingerprints(manifest, store_dir) | _named_in_params(manifest, store_dir):
        referenced.setdefault(fingerprint, []).append(str(run_dir))
    uses[0].referenced = len(referenced)
    blocked: list[str] = []
    for registration in found:
        if registration.problem is not None:
            blocked.append(f"{registration.path} {registration.problem}: gc cannot tell which run directory it "
                           f"registered (remove it if no run directory it could name uses this store: "
                           f"rm '{registration.path}')")
            continue
        assert registration.run_dir is not None
        other = Path(registration.run_dir)
        if _same(other, run_dir) if _exists(other) else str(other) == str(run_dir):
            if registration.host not in (None, _hostname()) and not _registered_run(registration, manifest,
                                                                                      store_dir):
                # one file per path: another host's run directory at this path registered last,
                # and what its run uses is not this one's (node-local run directories)
                blocked.append(f"{registration.path} says host {registration.host} last ran a run directory at "
                               f"{run_dir} in this store ({registration.describe()}), and its run is not this "
                               f"one's: run gc on host {registration.host}, or run this run directory's spec "
                               "again here (it registers), then gc")
            continue
        use = RunDirUse(str(other), "uses this store", registration=registration)
        uses.append(use)
        try:
            theirs = read_manifest(other)
        except (CurateError, OSError) as error:
            problem = getattr(error, "message", None) or str(error)
            if str(other) in forgotten:
                use.state, use.detail = "forgotten", problem
                continue
            use.state, use.detail = "cannot be read", problem
            host = "" if registration.host in (None, _hostname()) else \
                f" (it registered from host {registration.host}: run gc there, where it can be read)"
            blocked.append(f"run directory {other} uses this store ({registration.describe()}) and cannot be read "
                           f"here: {problem}{host}. gc cannot tell which folders it needs: if it is gone for good, "
                           f"pass --forget {other}; if it moved, run it once where it lies now (it registers "
                           "there), then --forget the old place")
            continue
        store = theirs.get("store_dir")
        if not isinstance(store, str) or not Path(store).is_absolute() or not _exists(Path(store)):
            # Its last run's store is not there to compare: this store moved (or was mounted
            # elsewhere) and that run directory still names the old place, or its store is gone.
            # Taken for "another store", every folder it needs here was deleted.
            problem = f"its last run used the store {store!r}, which is not there"
            if str(other) in forgotten:
                use.state, use.detail = "forgotten", problem
                continue
            use.state, use.detail = "cannot be read", problem
            blocked.append(f"run directory {other} is registered in this store ({registration.describe()}) and "
                           f"{problem}: gc cannot tell whether it is this store, moved. If it is, point that "
                           f"run directory here first (curate relocate {other} --store {store_dir}); if that "
                           f"run directory is done with this store, pass --forget {other}")
            continue
        elsewhere = registration.host not in (None, _hostname())
        if elsewhere and not _registered_run(registration, theirs, store_dir):
            # Node-local run directories at one path on every node, one network store: the run
            # directory here is not the one that registered from that host (its last run is another).
            problem = (f"it registered from host {registration.host}, and the run directory at that path here is "
                       "not the one that did (its last run is not the one it registered)")
            if str(other) in forgotten:
                use.state, use.detail = "forgotten", problem
                continue
            use.state, use.detail = "cannot be read", problem
            blocked.append(f"run directory {other} uses this store ({registration.describe()}), but {problem}: run "
                           f"gc on host {registration.host}, where it can be read; if it is gone for good there, "
                           f"pass --forget {other}")
            continue
        if str(other) in forgotten:
            raise UsageError(f"--forget {other}: that run directory is there and uses this store, it cannot be "
                             "forgotten", "gc keeps what it references; forget only a run directory that is gone")
        if not _same(Path(store), store_dir):
            use.state, use.detail = "uses another store", f"its last run used {store}"
            for fingerprint in _named_in_params(theirs, store_dir):  # a file of this store, by its path
                referenced.setdefault(fingerprint, []).append(str(other))
                use.referenced += 1
            continue
        for fingerprint in _fingerprints(theirs, store_dir) | _named_in_params(theirs, store_dir):
            referenced.setdefault(fingerprint, []).append(str(other))
            use.referenced += 1
    unknown = [path for path in forgotten if not any(use.run_dir == path for use in uses)]
    if unknown:
        raise UsageError(f"--forget {unknown[0]}: no such run directory is registered in the store {store_dir}",
                         "pass a run directory gc listed as one that cannot be read")
    shared = not own_store or any(use.state != "this run directory" for use in uses)
    folders, left_alone = _unreferenced(store_dir, referenced, found, shared and not all_registered)
    return Survey(run_dir, store_dir, own_store, shared, uses, referenced, folders, blocked, left_alone,
                  forgotten=[use.run_dir for use in uses if use.state == "forgotten"])


def _registered_run(registration: Registration, manifest: dict[str, Any], store_dir: Path) -> bool:
    """Whether ``manifest`` is the run ``registration`` last recorded: the folders its run used
    then (those it last used at its ``last_run``) are the manifest's."""
    last = {fingerprint for fingerprint, entry in registration.used.items()
            if registration.last_run is not None and entry.get("last_used") == registration.last_run}
    store = manifest.get("store_dir")
    return bool(last) and isinstance(store, str) and _same(Path(store), store_dir) \
        and last == _fingerprints(manifest, store_dir)


def _registration_of(found: list[Registration], run_dir: Path) -> Registration | None:
    for registration in found:
        path = Path(registration.run_dir) if registration.run_dir else None
        if path is not None and _exists(path) and _same(path, run_dir):
            return registration
    return None


def _hostname() -> str:
    import socket

    return socket.gethostname()


def _unreferenced(store_dir: Path, referenced: dict[str, list[str]], found: list[Registration],
                  keep_unknown: bool) -> tuple[list[Folder], list[str]]:
    if not store_dir.is_dir():
        return [], []
    folders, left_alone = [], []
    for entry in sorted(os.scandir(store_dir), key=lambda e: e.name):
        if entry.name in (REGISTRY, LOCK_NAME):
            continue
        partial = PARTIAL_FOLDER.fullmatch(entry.name)
        if not (STEP_FOLDER.fullmatch(entry.name) or partial) or not entry.is_dir(follow_symlinks=False):
            left_alone.append(entry.name)
            continue
        if not partial and entry.name in referenced:
            continue
        fingerprint = partial.group(1) if partial else entry.name
        path = Path(entry.path)
        folder = Folder(entry.name, path, _disk_bytes(path), (path / COMPLETE).is_file(), bool(partial))
        uses = [(reg, reg.used[fingerprint]) for reg in found if reg.problem is None and fingerprint in reg.used]
        folder.used_by = [str(reg.run_dir) for reg, _ in uses]
        if uses:
            _, latest = max(uses, key=lambda pair: str(pair[1].get("last_used")))
            folder.label, folder.step = _text(latest.get("label")), _text(latest.get("step"))
            folder.last_used, folder.last_used_from = _text(latest.get("last_used")), "registry"
        if folder.last_used is None:
            folder.last_used = _written(path)
        if keep_unknown and not uses and not partial:
            folder.kept_because = UNKNOWN
        folders.append(folder)
    return folders, left_alone


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _written(path: Path) -> str:
    """When anything at the top of ``path`` was last written (ISO, UTC)."""
    import datetime as dt

    newest = path.lstat().st_mtime
    with os.scandir(path) as entries:
        for entry in entries:
            try:
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
            except OSError:
                continue
    return dt.datetime.fromtimestamp(newest, dt.timezone.utc).isoformat(timespec="seconds")


def _disk_bytes(path: Path) -> int:
    """What removing ``path`` frees: the disk blocks of everything under it, each file once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for top, folders, files in os.walk(path):
        for name in [*folders, *files]:
            try:
                info = os.lstat(os.path.join(top, name))
            except OSError:
                continue
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
    return total + os.lstat(path).st_blocks * 512


def _delete(survey: Survey) -> None:
    """Remove every removable folder, or none: refused while something blocks gc, and checked
    first that each can be removed (another user's folder in a shared store, an immutable file)."""
    if survey.blocked:
        raise RunDirError(
            f"gc deletes nothing in the store {survey.store_dir}: " + "; ".join(survey.blocked),
            "`curate gc RUN_DIR` (without --delete) lists what it would delete and what stops it. Nothing was "
            "removed")
    removable = survey.removable
    for folder in removable:
        problem = removal_problem(folder.path)
        if problem is not None:
            raise RunDirError(f"cannot remove the step folder {folder.path}: {problem}. Nothing was removed",
                              f"make it removable (another user's: ask them, or share a group with umask 002 "
                              f"and chmod -R g+w; an immutable file: chattr -i), or remove it by hand "
                              f"(rm -r '{folder.path}')")
    for folder in removable:
        try:
            remove_folder(folder.path)
        except OSError as error:
            raise RunDirError(f"could not remove the step folder {folder.path}: {error.filename or folder.path}: "
                              f"{error.strerror or error}; its markers are gone, so what is left is never reused "
                              "as finished", f"remove it by hand (rm -r '{folder.path}')") from error
        folder.deleted = True
    deleted = {folder.path.name for folder in removable}
    fingerprints = {name.removesuffix(".partial") for name in deleted}
    _unlink_dangling_steps(survey.run_dir, {folder.path for folder in removable})
    for use in survey.run_dirs:
        if use.registration is None:
            continue
        try:
            if use.state == "forgotten":
                forget(use.registration)
            else:  # a deleted folder's entry is harmless, only kept no longer than needed
                forget_folders(use.registration, fingerprints - set(survey.referenced))
        except (OSError, ValueError) as error:
            warnings.warn(f"could not update {use.registration.path} ({getattr(error, 'strerror', None) or error})"
                          + (f": {use.run_dir} is still registered in the store; forget it again once it can be "
                             "removed" if use.state == "forgotten" else ""),
                          StoreRegistrationWarning, stacklevel=2)
    survey.deleted = True


def _unlink_dangling_steps(run_dir: Path, deleted: set[Path]) -> None:
    """``steps/NN_label`` entries of the run directory that led to a deleted folder (an older spec's
    later steps): links, or pointer files where links could not be made."""
    steps = run_dir / "steps"
    if not steps.is_dir() or steps.is_symlink():
        return
    for entry in steps.iterdir():
        try:
            if entry.is_symlink():
                target = Path(os.path.normpath(steps / os.readlink(entry)))
            elif entry.is_file() and entry.stat().st_size < 4096:
                target = Path(entry.read_text().strip())
            else:
                continue
        except (OSError, UnicodeDecodeError):
            continue
        if target in deleted:
            entry.unlink()
