"""Reading curate's own small files back (markers, manifests, lock holders, ``kept.json``).

A run directory may come from somewhere else (a shared disk, a colleague's copy), and what sits
where curate keeps a file is not always one: a named pipe there made ``curate inspect``,
``report``, ``plan`` and ``run --resume`` wait forever for a writer, and ``/dev/zero`` linked in
never ends. So these reads open without waiting (``O_NONBLOCK``), read only a regular file, and
at most ``limit`` bytes; anything else is an ``OSError`` naming the file, which every caller
already turns into "damaged, recomputed" or "damaged, here is the repair".

The same holds for files a spec names (a step's entry list, eval set or model folder), which may
come from someone else with the spec: :func:`not_regular` says what is there instead of a file,
in the words of :func:`describe_mode`, and :func:`outside_working_directory` refuses, for a spec
run with ``--untrusted``, a path that reaches out of the working directory (:func:`where_outside`
says where it leads).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

MARKER_LIMIT = 16 << 20  # a step's or a shard's marker: a few kB, ~100 bytes per stored file
MANIFEST = "manifest.json"  # a run directory's record of its run
MANIFEST_LIMIT = 256 << 20  # a manifest: a record per step, however many steps
COMPLETE = "_COMPLETE.json"  # a finished step's (or shard's) marker, in its folder
# A step that finished with a result its plugin refused (Step.result_problem): its next run retries
# the rows that failed transiently, as `curate run --retry-failed` does.
RETRY_NEXT = "_RETRY_FAILED.json"


def describe_mode(mode: int) -> str:
    """What a file of ``mode`` (``st_mode``) is, in the words curate's messages use."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "a socket" if stat.S_ISSOCK(mode) else "a special file"


def not_regular(path: str | Path) -> str | None:
    """Why ``path`` (links followed) is not a regular file one may read to its end, completing
    "<what> <path> …": "does not exist", "is a folder", "is a pipe (FIFO) (a link to …)"; None
    when it is one. Nothing is opened: a pipe would wait for a writer, a device never end."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return f"is a broken link (to {os.path.realpath(path)})" if os.path.islink(path) else "does not exist"
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if stat.S_ISREG(mode):
        return None
    link = f" (a link to {os.path.realpath(path)})" if os.path.islink(path) else ""
    return f"is {describe_mode(mode)}{link}, not a file"


UNTRUSTED_READS = ("the spec is untrusted (run.untrusted / --untrusted), so it reads only files inside the working "
                   "directory")


def outside_working_directory(raw: str) -> str | None:
    """For a spec from someone else (``run.untrusted``): why the file or folder it names as
    ``raw`` may not be read (None: it lies inside the working directory, links resolved). Its
    contents could reach the run's outputs (an entry list is copied into the run directory):
    an absolute path elsewhere, ``~``, ``..`` or a link out would hand any file of this machine to
    whoever gets the run back, as file access in its SQL would (refused the same way)."""
    where = where_outside(raw)
    if where is None:
        return None
    return (f"'{raw}' is {where}; {UNTRUSTED_READS}: copy it there and give its relative path, "
            "or run the spec without --untrusted if you trust it")


def where_outside(raw: str, base: str | Path | None = None, also: Iterable[str | Path] = ()) -> str | None:
    """Where the file or folder a spec names as ``raw`` lies, completing "'<raw>' is …", when that
    is outside the working directory (and the folders ``also``), links resolved; None when it is
    inside. A relative ``raw`` is relative to ``base`` (default: the working directory). ``~`` and
    ``..`` are refused as written, wherever they would lead."""
    path = Path(raw)
    if raw.startswith("~"):
        return "outside the working directory"
    if ".." in path.parts:  # not resolved: what '..' reaches depends on links the spec may bring along
        return "written with '..' (an untrusted spec may not use '..' whatever it leads to)"
    full = path if path.is_absolute() or base is None else Path(base) / path
    if confined(full, real_folders([os.getcwd(), *also])) is not None:
        return None
    real = os.path.realpath(full)
    if real != os.path.abspath(full):
        return f"a link to {real}, outside the working directory"
    return "outside the working directory" if path.is_absolute() else f"{real}, outside the working directory"


class NotRegularFile(OSError):
    """:func:`open_regular` found something else at the path; ``mode`` says what."""

    def __init__(self, path: Path, mode: int):
        super().__init__(f"{path} is {describe_mode(mode)}, not the file curate wrote there")
        self.mode = mode


@contextmanager
def open_regular(path: Path) -> Iterator[BinaryIO]:
    """``path`` opened for reading if it is a regular file (through links), else
    :class:`NotRegularFile`, never waiting: opening a pipe waits for a writer unless
    ``O_NONBLOCK``, and the check is on what was opened, not on an earlier ``stat``."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(path, mode)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            yield handle
    finally:
        os.close(fd)


class FileOutside(PermissionError):
    """A read confined to some folders (:func:`confined`) was asked for a file outside them,
    links resolved; ``path`` is where it really lies, ``hint`` (if any) how to go on. Nothing was
    opened."""

    def __init__(self, message: str, path: Path, hint: str | None = None):
        super().__init__(message)
        self.path = path
        self.hint = hint

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self), self.path, self.hint)


def real_paths(paths: Iterable[str | Path]) -> list[str]:
    """``os.path.realpath`` of each of ``paths``, each folder resolved once: a file that is no
    link lies in its folder's real path. ``realpath`` reads every part of a path (~25 ``lstat``
    calls a file, 0.05 ms): a source's 10,000 files were resolved twice while planning."""
    folders: dict[str, str] = {}
    out = []
    for path in paths:
        text = os.fspath(path)
        folder, name = os.path.split(text)
        if name in ("", ".", "..") or os.path.islink(text):
            out.append(os.path.realpath(text))
            continue
        real = folders.get(folder)
        if real is None:
            real = folders[folder] = os.path.realpath(folder)
        out.append(os.path.join(real, name))
    return out


def real_folders(folders: Iterable[str | Path]) -> tuple[Path, ...]:
    """``folders`` with their links resolved, for :func:`confined`."""
    return tuple(Path(os.path.realpath(folder)) for folder in folders)


def confined(path: str | Path, folders: tuple[Path, ...]) -> Path | None:
    """``path`` with its links resolved if that lies inside one of ``folders`` (from
    :func:`real_folders`), else None. A run directory from elsewhere names files by data (an image
    shard, a link): an absolute path, ``..`` or a link must not reach the rest of this machine.
    Open the path returned, not ``path``: a link swapped in between would otherwise be followed."""
    real = Path(os.path.realpath(path))
    return real if any(real.is_relative_to(folder) for folder in folders) else None


def read_bytes(path: Path, limit: int = MARKER_LIMIT) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them, never waiting for a
    writer; ``OSError`` naming the file for anything else."""
    with open_regular(path) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"{path} is larger than any file curate writes there ({limit:,} bytes at most)")
    return data


def read_text(path: Path, limit: int = MARKER_LIMIT) -> str:
    """:func:`read_bytes` as UTF-8 (``UnicodeDecodeError`` for other bytes)."""
    return read_bytes(path, limit).decode("utf-8")


def read_json(path: Path, limit: int = MARKER_LIMIT) -> Any:
    """:func:`read_bytes` parsed as JSON (``ValueError`` for anything else, nesting past
    Python's stack too: ``[[[…]]]`` 1,000 deep raised RecursionError, an internal error)."""
    return json_value(read_bytes(path, limit), path)


def json_value(data: bytes | str, where: Any = "the text") -> Any:
    """``json.loads(data)``, with ValueError (never RecursionError) for text nested too deep."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError(f"{where} is JSON nested too deep to read") from None


def remove_tree(path: Path) -> None:
    """Remove whatever is at ``path``, one of curate's own scratch names (a step's ``.partial``
    folder, a staging folder under ``tmp/``): a folder with everything in it, anything else (a
    link, a pipe, a file) by its name alone; nothing there is fine, and so is a folder that
    cannot be removed (what comes next names it). ``shutil.rmtree`` opens its path first: a pipe
    there made a run wait forever for a writer, and a link made the folder the run then creates
    there fail as existing. (A link is never followed: rmtree refuses one, and removes those
    inside the folder as links.)"""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path, ignore_errors=True)
        return
    try:
        os.unlink(path)
    except OSError:
        pass


# DuckDB's read_parquet and Polars' read/scan_parquet take a path holding one of these for a file
# pattern, even in a list of files: "runs[1]/x.parquet" reads runs1/x.parquet, "a?/x.parquet" every
# a?/x.parquet there is. Every table curate reads goes through them, so such paths are refused.
PATTERN_CHARACTERS = "*?["


def pattern_characters(path: Path | str) -> str:
    """The characters of ``path`` that those readers take for a pattern, once each, in order;
    empty when it has none."""
    return "".join(dict.fromkeys(char for char in str(path) if char in PATTERN_CHARACTERS))


def read_as_pattern(path: Path | str) -> str | None:
    """Why curate cannot read files at ``path`` safely, or None."""
    found = pattern_characters(path)
    if not found:
        return None
    return (f"{path} holds {' and '.join(repr(c) for c in found)}, which DuckDB and Polars read as a file pattern "
            "(they would read other files that match it too, or instead)")


def holds_a_run(folder: Path) -> bool:
    """Whether ``folder`` is a curate run directory: its manifest names its ``spec_hash`` near the
    top (a manifest cut short still counts; what is not a regular file there is not opened)."""
    try:
        with open_regular(folder / MANIFEST) as handle:
            return b'"spec_hash"' in handle.read(4096)
    except OSError:
        return False
