"""One error family. Every error says what was tried and how to fix it.

They stay picklable (plain ``args``) because they cross process and Ray boundaries.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass


def reported(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure curate reports as a step's, a sink's or its own error: every
    ``Exception``, and the ``PanicException`` a Rust extension (Polars, via pyo3) raises when it
    gives up, which is a ``BaseException`` and so went past every ``except Exception`` as a bare
    traceback. Not Ctrl-C and not an exit."""
    if isinstance(exc, Exception):
        return True
    kind = type(exc)
    return kind.__name__ == "PanicException" and kind.__module__.startswith("pyo3")


class CurateError(Exception):
    """Base of every error curate raises on purpose. The CLI prints it without a traceback.

    ``run_dir``: the run directory a :func:`curate.run` call that raised it ran in (or would
    have), None where the spec did not plan or elsewhere."""

    exit_code = 1
    run_dir = None

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, hint)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec, located by its path (``steps[2].params.min_score``)."""

    path: str
    message: str
    hint: str | None = None
    line: int | None = None
    # The file the line is in, where that is not the one the error is about (the base spec of an
    # experiment, curate_train); None: that one.
    file: str | None = None

    def as_json(self) -> dict[str, object]:
        """As ``curate validate --json`` lists it: ``where`` is :attr:`path`."""
        return {"where": self.path, "line": self.line, "file": self.file, "message": self.message, "hint": self.hint}

    def render(self, source_name: str | None = None) -> str:
        where = self.path or "<spec>"
        if self.line is not None:
            where = f"{self.file or source_name or 'spec'}:{self.line}: {where}"
        text = f"{where}: {self.message}"
        return text if not self.hint else f"{text} ({self.hint})"


class SpecError(CurateError):
    """The spec is wrong. Carries every problem found, not just the first."""

    exit_code = 2

    def __init__(self, problems: list[Problem] | str, source_name: str | None = None):
        if isinstance(problems, str):
            problems = [Problem("", problems)]
        self.problems = list(problems)
        self.source_name = source_name
        count = len(self.problems)
        header = f"{count} problem{'s' if count != 1 else ''} in {source_name or 'the spec'}:"
        body = "\n".join("  - " + p.render(source_name) for p in self.problems)
        super().__init__(f"{header}\n{body}")
        self.args = (self.problems, source_name)

    def __str__(self) -> str:
        return self.message


def problems_of(exc: CurateError) -> list[Problem]:
    """Every problem ``exc`` reports, located as ``curate validate`` locates them: a SpecError's
    each with the file its line is in; any other error as one problem of the spec as a whole."""
    import dataclasses

    if isinstance(exc, SpecError):
        return [dataclasses.replace(problem, file=problem.file or exc.source_name) for problem in exc.problems]
    return [Problem("", exc.message, exc.hint)]


class UsageError(CurateError):
    """The command line asked for something impossible (missing run dir, unknown step label)."""

    exit_code = 2


class PluginError(CurateError):
    """A plugin is broken or two plugins claim the same name."""


def pip_install(extra: str | None = None, modules: Sequence[str] = ()) -> str:
    """The install line for an optional dependency: ``pip install 'curate[extra]'`` when one of
    curate's extras provides it, else ``pip install`` of the modules themselves."""
    return f"pip install 'curate[{extra}]'" if extra else "pip install " + " ".join(modules)


class MissingDependencyError(CurateError):
    """A step needs an optional package that is not installed; says the exact install line."""

    exit_code = 2

    def __init__(self, what: str, modules: list[str], extra: str | None):
        install = pip_install(extra, modules)
        super().__init__(
            f"{what} needs {', '.join(modules)}, which {'is' if len(modules) == 1 else 'are'} not installed",
            hint=f"run: {install}",
        )
        self.args = (what, modules, extra)


class SourceError(CurateError):
    """The input data cannot be read as the spec says (missing file, missing column, bad format)."""

    exit_code = 2


# Writes that found no room, with the words the C library gives them (which Polars, DuckDB and
# pyarrow quote inside errors of their own).
NO_ROOM = {errno.ENOSPC: "No space left on device", errno.EDQUOT: "Disk quota exceeded",
           errno.EFBIG: "File too large"}


def out_of_room(exc: BaseException) -> int | None:
    """The errno of a write that found no room (a full disk ENOSPC, a used-up quota EDQUOT, a
    file-size limit EFBIG), in an ``OSError`` or quoted in a library's error; None otherwise."""
    if isinstance(exc, OSError) and exc.errno in NO_ROOM:
        return exc.errno
    text = str(exc)
    return next((number for number, words in NO_ROOM.items() if words in text), None)


def disk_full(exc: BaseException) -> bool:
    """``exc`` says a write found no room (:func:`out_of_room`): the run's problem, not a step's."""
    return out_of_room(exc) is not None


FILE_SIZE_LIMIT = ("a file-size limit stopped the write: the shell's `ulimit -f` (RLIMIT_FSIZE, often set by "
                   "a batch system or a container) or the filesystem's largest file (FAT32: 4 GB)")


@dataclass(frozen=True)
class RoomFix:
    """How to get room after a write found none: ``fix`` holds wherever curate writes (a run's views
    too); ``run_advice`` is what a run's own files allow besides (where its directory is, how large
    its shards are)."""

    fix: str
    run_advice: str

    def for_run(self) -> str:
        return f"{self.fix}, {self.run_advice}; a re-run resumes"


ROOM_FIXES = {
    errno.ENOSPC: RoomFix("the disk is full: free space on it",
                          "or set run.dir to a bigger disk (a run keeps every step's shards and DuckDB "
                          "spills to RUN_DIR/tmp/duckdb)"),
    errno.EDQUOT: RoomFix("the disk quota of this user is used up (quota -s shows it): free space under it",
                          "or set run.dir and run.cache_dir to a disk with room"),
    errno.EFBIG: RoomFix(f"{FILE_SIZE_LIMIT}: raise it (ulimit -f unlimited)",
                         "or lower run.shard_size so each stored shard is smaller"),
}


def resource_hint(exc: BaseException) -> str | None:
    """How to fix a failure that is the machine's, not a step's: DuckDB out of memory, a full disk."""
    if type(exc).__name__ == "OutOfMemoryException" and type(exc).__module__.lstrip("_").startswith("duckdb"):
        return ("DuckDB needed more memory than run.memory_limit allows (default 256MB) and could not spill it: "
                "raise it in the spec (run: {memory_limit: 2GB}), or free disk space under the run directory "
                "(DuckDB spills to RUN_DIR/tmp/duckdb until run.min_free_disk, default 512MB, is left); a source of "
                "thousands of columns needs memory for each (10,000 took more than 256MB for 10 rows): carry only "
                "those the run needs with source.keep: [col, …]")
    room = out_of_room(exc)
    return ROOM_FIXES[room].for_run() if room is not None else None


def written_path(exc: BaseException) -> str | None:
    """The file a failed write names: an ``OSError``'s filename, else the first absolute path a
    library quotes in its message (DuckDB: 'Could not write file "/run/.curate.duckdb.12.tmp"')."""
    if isinstance(exc, OSError) and exc.filename:
        return str(exc.filename)
    import re

    found = re.search(r"""["'](/[^"'\n]+)["']""", str(exc))
    return found.group(1) if found else None


def room_left(exc: BaseException, named: bool = False) -> str:
    """What is known of the room a failed write had, for its message: the free space on the disk
    of the file it names (or the file-size limit), as " (… free on …)"; empty when unknown.
    ``named``: the message names the file already."""
    number = out_of_room(exc)
    if number == errno.EFBIG:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        return "" if limit == resource.RLIM_INFINITY else f" (ulimit -f allows files of {_size(limit)})"
    path = written_path(exc)
    if number is None or path is None:
        return ""
    from curate.diskspace import free_bytes

    try:
        return f" ({_size(free_bytes(path))} free on {'its disk' if named else f'the disk holding {path}'})"
    except OSError:
        return ""


def _size(count: int) -> str:
    from curate.diskspace import size_text

    return size_text(count)


def _cause(exc: BaseException, short: bool) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0].strip() if short and text else text}"


def error_line(exc: BaseException) -> str:
    """``Type: first line of the message``: how a plugin's exception is quoted in curate's errors."""
    return _cause(exc, short=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM (systemd, docker stop, Kubernetes, Slurm, ``timeout``) or SIGHUP (a dropped ssh session, a
    closed terminal): handled as Ctrl-C is, so the run stops the same way (its manifest says interrupted,
    its scratch is removed) and says so; the process exits 128 + the signal's number."""

    def __init__(self, signum: int = 15) -> None:
        super().__init__()
        self.signum = signum

    @property
    def name(self) -> str:
        return {1: "SIGHUP", 15: "SIGTERM"}.get(self.signum, f"signal {self.signum}")


def stop_words(exc: KeyboardInterrupt) -> str:
    """How a stop is told: ``terminated (SIGTERM)`` or ``interrupted`` (Ctrl-C)."""
    return f"terminated ({exc.name})" if isinstance(exc, Terminated) else "interrupted"


def stop_exit_code(exc: KeyboardInterrupt) -> int:
    return 128 + exc.signum if isinstance(exc, Terminated) else 130


class StepError(CurateError):
    """A step failed while running; names the step and the shard."""

    def __init__(self, step_label: str, shard: int | None, cause: str, hint: str | None = None):
        where = f"step '{step_label}'" + (f", shard {shard}" if shard is not None else "")
        super().__init__(f"{where} failed: {cause}", hint)
        self.step_label = step_label
        self.shard = shard
        self.args = (step_label, shard, cause, hint)

    @classmethod
    def from_exception(cls, step_label: str, shard: int | None, exc: BaseException) -> StepError:
        """A step's unexpected exception, named; out of memory or disk gets the fix as its hint
        (and only the first line of DuckDB's own advice, which speaks of SQL settings), and so
        does a file refused for lying outside the folders it may be read from (its own hint), and
        an image gone from the run's store (its own hint: how to store it again)."""
        from curate.images import ImageGone
        from curate.runfiles import FileOutside

        hint = resource_hint(exc)
        if hint is None and isinstance(exc, (FileOutside, ImageGone)):
            return cls(step_label, shard, _cause(exc, short=False), exc.hint)
        return cls(step_label, shard, _cause(exc, short=hint is not None), hint)


class ResourceError(CurateError):
    """The machine ran out of something (memory under DuckDB's limit, disk) outside any one step's code."""

    @classmethod
    def from_exception(cls, exc: BaseException, where: str | None = None) -> ResourceError | None:
        """``where``: what was running (``step 'sample'``), to name in the message."""
        hint = resource_hint(exc)
        if hint is None:
            return None
        number = out_of_room(exc)
        if where is None and number is not None:  # outside a run's steps: say what was written
            path = written_path(exc)
            cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else \
                f"{NO_ROOM[number]} ({_cause(exc, short=True)})"
            return cls(f"{f'could not write {path}' if path else 'a write failed'}: {cause}"
                       f"{room_left(exc, named=True)}", hint)
        during = f" during {where}" if where else ""
        return cls(f"the run failed{during}: {_cause(exc, short=True)}{room_left(exc)}", hint)


def unusable_path(exc: BaseException) -> CurateError | None:
    """A read-only run directory, or one this user may not write (EROFS, EACCES, EPERM), as the
    error curate says it with (None: ``exc`` is not that)."""
    if not (isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)):
        return None
    hint = ("curate writes into the run directory (its lock, manifest, views and report) and the "
            "store: run where you may write, or copy the run directory there first")
    return CurateError(f"cannot use {exc.filename or 'a file'}: {exc.strerror}", hint)


class RunLockedError(CurateError):
    """Another run holds the run directory or the store; names the holder (pid, host, start)."""

    exit_code = 75  # EX_TEMPFAIL (sysexits.h): try again later, or --wait (EXIT_CODES)


class RunDirError(CurateError):
    """A run directory cannot be used as it is: a damaged manifest, a file where curate keeps a
    folder (or the reverse). Names the path and how to repair it."""

    exit_code = 2


class StoredFilesChanged(RunDirError):
    """``curate inspect --verify`` found finished steps whose stored files are not what their
    markers recorded: a code of its own, as a CI gate acts on it (``curate run --resume``)."""

    exit_code = 3


class OutputError(CurateError):
    """An output cannot be written where the spec says without destroying files curate did not write."""

    exit_code = 2


class StorageError(CurateError):
    """Object storage (``s3://`` or another fsspec URL) refused or could not be reached: names the
    URL, what was attempted and what to change (bucket, credentials, endpoint)."""

    exit_code = 2


# What each exit status of ``curate`` means, for scripts (cron, CI, Kubernetes, Airflow): shown by
# ``curate --help`` and in the README. Codes a script acts on differently are distinct.
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "ok, warnings included (also when a reader closes stdout early: | head, | grep -q)"),
    (1, "the run failed: a step's error, no room on disk, an internal error"),
    (2, "the spec, the command line, the input data or the run directory is wrong: fix it"),
    (3, "inspect --verify found stored files changed: curate run --resume RUN_DIR recomputes"),
    (75, "another run holds the run directory or store (EX_TEMPFAIL): retry later, or --wait"),
    (130, "interrupted (SIGINT, Ctrl-C); a re-run resumes"),
    (129, "terminated (SIGHUP: a dropped ssh session); a re-run resumes"),
    (143, "terminated (SIGTERM); a re-run resumes"),
)
