"""A finished run whose views (``curate.duckdb``) cannot be written: said, not hidden.

The views were written after the manifest said "complete": a full disk then left the manifest
saying complete beside the ``curate.duckdb`` of the run before, whose views showed another spec's
steps and rows as this run's. Now the views are written first; where that fails, the earlier
``curate.duckdb`` is removed, the manifest says the steps are complete and the views were not
written (``views_error``, shown by ``curate inspect``), and the error says how to write them
again: ``curate relocate RUN_DIR``, which reads nothing but the run directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curate.errors import (
    NO_ROOM,
    ROOM_FIXES,
    CurateError,
    ResourceError,
    error_line,
    out_of_room,
    room_left,
    written_path,
)

VIEWS_ERROR = "views_error"  # the manifest's key: why the views were not written


def views_failed(run_dir: Path, manifest: dict[str, Any], exc: BaseException) -> BaseException:
    """Record in ``manifest`` that the views of ``run_dir`` could not be written (``exc``) and
    remove the earlier ones; returns the error to raise once the manifest is written: ``exc``
    itself where it is a bug, not the machine's answer."""
    from curate.runstore import DATABASE

    database = Path(run_dir) / DATABASE
    try:
        database.unlink(missing_ok=True)
        gone = f"the earlier {database} was removed, so that its views are not taken for this run's"
    except OSError as error:
        gone = f"the earlier {database} could not be removed ({error.strerror}): its views are not this run's"
    room = out_of_room(exc)
    path = written_path(exc) or str(database)
    cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else \
        f"{NO_ROOM[room]} ({error_line(exc)})" if room is not None else error_line(exc)
    what = f"could not write {path}: {cause}{room_left(exc, named=True)}"
    manifest[VIEWS_ERROR] = what
    message = f"the run's steps and outputs are complete, but its views could not be written: {what}; {gone}"
    again = f"`curate relocate {run_dir}` writes them again, recomputing nothing"
    if room is not None:
        return ResourceError(message, f"{ROOM_FIXES[room].fix}, then {again}")
    if isinstance(exc, OSError):
        return CurateError(message, f"check that {Path(run_dir)} can be written, then {again}")
    return exc
