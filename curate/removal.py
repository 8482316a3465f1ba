"""Removing step folders from the store, all of them or none, or a clear error.

``--no-cache``, ``--from STEP`` and ``--retry-failed`` remove the folders of the steps they
recompute, and a table step's new output replaces its old folder. They were removed with
``shutil.rmtree(..., ignore_errors=True)``: in a shared store whose folders belong to another user
nothing was removed, the intact folders passed the cache check and every step said ``cached: yes``;
with one file that could not be deleted (``chattr +i``) the step was left half deleted and the
rename of its new output over it failed as an internal error.

Now every folder is looked at before any is touched (each folder inside it must be writable and
searchable by this user, and a sticky folder's entries this user's), so a run that cannot remove
them stops before it deletes anything, naming the folder, whose it is and how to fix it; a file
marked immutable or append-only is found by its flags (``curate.fileflags``). A folder that still
fails halfway (such a file on a filesystem that cannot say so) loses its markers first, so it is
never taken for finished, and the error names the file and the ``OSError``.

A step that must be recomputed (damaged, or left unfinished) in a folder this user cannot change,
another user's in a shared store, is refused the same way before anything is computed
(:func:`check_recomputable`), naming the step, what is wrong with it and whose it is.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path

from curate.errors import RunDirError
from curate.fileflags import pinned
from curate.runfiles import COMPLETE
from curate.storedimages import ARTIFACTS
from curate.users import me, owner

SHARD_MARKERS = "shards"


def _may(path: str, mode: int) -> bool:
    if os.access in os.supports_effective_ids:  # setuid/setpriv: the ids that open files count
        return os.access(path, mode, effective_ids=True)
    return os.access(path, mode)


def _folder_problem(folder: str) -> str | None:
    """Why this user may not delete entries of ``folder`` (looked at, nothing changed), or None."""
    if _may(folder, os.W_OK | os.X_OK):
        return None
    if os.statvfs(folder).f_flag & os.ST_RDONLY:
        return f"{folder} is on a read-only mount"
    if os.geteuid() == 0:
        return f"{folder} cannot be written even by root: it is marked immutable or append-only (lsattr -d)"
    mode = stat.filemode(os.stat(folder).st_mode)
    return f"{folder} belongs to user {owner(folder)} ({mode}), and user {me()} may not delete in it"


def _sticky_problem(folder: str, names: Iterable[str]) -> str | None:
    """In a sticky folder (``chmod +t``, as /tmp) only an entry's owner, the folder's and root
    may delete it: the first entry of ``names`` this user may not, or None."""
    folder_stat = os.stat(folder)
    euid = os.geteuid()
    if not folder_stat.st_mode & stat.S_ISVTX or euid in (0, folder_stat.st_uid):
        return None
    for name in names:
        path = os.path.join(folder, name)
        try:
            if os.lstat(path).st_uid != euid:
                return (f"{path} belongs to user {owner(path)} and {folder} is sticky (only an entry's "
                        "owner may delete it)")
        except FileNotFoundError:
            continue
    return None


def removal_problem(path: Path) -> str | None:
    """Why this process could not remove ``path`` and everything in it, or None (nothing there is
    fine). Only looked at (an immutable file is asked for its flags, :func:`curate.fileflags.pinned`,
    which a filesystem without them cannot answer: deleting it then finds it)."""
    try:
        top = os.lstat(path)
    except FileNotFoundError:
        return None
    problem = _folder_problem(str(path.parent)) or _sticky_problem(str(path.parent), [path.name])
    if problem or not stat.S_ISDIR(top.st_mode):
        return problem or pinned(str(path))
    return change_problem(path, every_file=True)


def change_problem(path: Path, every_file: bool = False) -> str | None:
    """Why this process could not change or delete what the folder ``path`` holds (as a step
    recomputed in its own folder does: its markers deleted, its shards replaced), or None. The
    flags of the files under ``artifacts/`` (a download's images, which stay) are asked only with
    ``every_file`` (removing the folder): one open each."""
    if not path.is_dir() or path.is_symlink():
        return None
    unreadable: list[OSError] = []
    kept = os.path.join(path, ARTIFACTS)
    for folder, folders, files in os.walk(path, onerror=unreadable.append):
        if unreadable:
            break
        problem = pinned(folder)
        if not problem and (folders or files):
            problem = _folder_problem(folder) or _sticky_problem(folder, [*folders, *files])
        if not problem and (every_file or not (folder + os.sep).startswith(kept + os.sep)):
            problem = next(filter(None, (pinned(os.path.join(folder, name)) for name in files)), None)
        if problem:
            return problem
    if unreadable:
        error = unreadable[0]
        return f"{error.filename} cannot be listed ({error.strerror}; it belongs to {owner(error.filename)})"
    return None


def _remove(path: Path) -> None:
    """Remove ``path``: its step marker first, then its shards' markers, then the rest, so a
    folder that fails halfway is never reused as finished. Raises the first ``OSError``."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):  # a link or a file by its name, never followed
        os.unlink(path)
        return
    try:
        os.unlink(path / COMPLETE)
    except FileNotFoundError:
        pass
    shards = path / SHARD_MARKERS
    if shards.is_dir() and not shards.is_symlink():
        shutil.rmtree(shards, onerror=_named)
    shutil.rmtree(path, onerror=_named)


def remove_folder(path: Path) -> None:
    """Remove a step folder as a recompute does (:func:`_remove`: its markers first, so one that
    fails halfway is never reused as finished); ``curate gc`` removes the folders no run needs."""
    _remove(path)


def _named(function: object, path: str, exc_info: tuple) -> None:
    """rmtree's error, with the whole path of what it could not remove (it names only the entry)."""
    error = exc_info[1]
    if isinstance(error, OSError) and error.errno is not None:
        raise OSError(error.errno, error.strerror, path) from error
    raise error


def check_removable(folders: Iterable[tuple[str, Path]], why: str) -> None:
    """Raise :class:`RunDirError` for the first ``(label, folder)`` this process could not remove
    (:func:`removal_problem`), naming whose it is and how to go on; ``why`` ("--no-cache
    recomputes it") says why it would be removed."""
    for label, folder in folders:
        problem = removal_problem(folder)
        if problem is not None:
            raise RunDirError(
                f"cannot recompute step '{label}' ({why}): its folder {folder} cannot be removed: {problem}. "
                "Nothing was removed", _fix(folder))


def remove_step_folders(folders: Iterable[tuple[str, Path]], why: str) -> None:
    """Remove each ``(label, folder)``: all of them, or, where one cannot be removed, none (as far
    as looking can tell, :func:`check_removable`) and a :class:`RunDirError`."""
    folders = list(folders)
    check_removable(folders, why)
    for label, folder in folders:
        try:
            _remove(folder)
        except OSError as error:
            raise RunDirError(
                f"cannot recompute step '{label}' ({why}): its folder {folder} could not be removed: "
                f"{error.filename or folder}: {error.strerror or error}; its markers are gone, so what is "
                "left is never reused as finished",
                _fix(folder)) from error


def check_recomputable(damaged: tuple[str, str], folders: Iterable[tuple[str, Path, bool]]) -> None:
    """Raise :class:`RunDirError` before anything is computed or changed where a step that must be
    recomputed could not be: a finished step damaged in another user's store was recomputed to the
    end (or failed on its marker with a bare "Permission denied", naming a step fused with it).
    ``damaged``: the step to recompute and why (its cache problem); ``folders``: each ``(label,
    folder, in_place)`` it would change, its files replaced in place (a shard step) or removed
    whole (a table step or the source, whose new output replaces the folder)."""
    label, why = damaged
    for other, folder, in_place in sorted(folders, key=lambda entry: entry[0] != label):  # its own first
        problem = change_problem(folder) if in_place else removal_problem(folder)
        if problem is None:
            continue
        whose = "its folder" if other == label else f"the folder of step '{other}', fused with it,"
        holder = owner(folder)
        fix = _fix(folder) if holder in (me(), "?") else (
            f"the step is user {holder}'s, in a store you share: ask {holder} to run it again (their "
            f"spec, or `curate run --resume RUN_DIR` as {holder}), which recomputes it in the store, or "
            "give this run a store of your own (run.cache_dir in the spec, or none: the run directory's "
            "own store)")
        why = "it was not finished" if why == "not complete" else why
        raise RunDirError(f"step '{label}' must be recomputed ({why}), but {whose} {folder} cannot be "
                          f"changed: {problem}. Nothing was changed", fix)


def _fix(folder: Path) -> str:
    return (f"make it removable and remove it (rm -r '{folder}'; a file marked immutable: lsattr, chattr -i; "
            "another user's: ask them, or have the store's users share a group with umask 002 and "
            "chmod -R g+w), or give this run a store of your own (run.cache_dir in the spec, or none: the "
            "run directory's own store)")
