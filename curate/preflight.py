"""What ``curate validate`` warns of that ``curate run`` would refuse at once, though the spec is
fine: another run holding the run directory or the store (transient: a note, not a failure), and a
run directory or store this user cannot create or write (the run stops with "Permission denied").
Only looks: creates, opens for writing and locks nothing."""

from __future__ import annotations

import os
from pathlib import Path

from curate.lock import holder_of, in_use


class PreflightWarning(UserWarning):
    """What would stop a run now though the spec is fine (:func:`curate.validate` warns it)."""


def run_dir_warnings(run_dir: Path, store_dir: Path) -> list[str]:
    """One line for each thing that would stop ``curate run`` in ``run_dir`` with ``store_dir``."""
    found = []
    for what, directory in (("run directory", run_dir), ("store", store_dir)):
        holder = holder_of(directory)
        if holder is not None:
            found.append(f"the {in_use(what, directory, holder)}; `curate run` would refuse "
                         f"(exit 75) unless given --wait")
        elif not _writable(directory) and not (found and directory.is_relative_to(run_dir)):
            found.append(f"the {what} {directory} cannot be {'written' if directory.exists() else 'created'} "
                         f"by this user: `curate run` would stop with 'Permission denied'; give --run-dir "
                         f"(or run.dir, run.cache_dir) a folder you may write")
    return found


def _writable(directory: Path) -> bool:
    """Whether this user may create files in ``directory``, or create it under its nearest
    existing parent."""
    path = directory
    while not path.exists() and path != path.parent:
        path = path.parent
    effective = os.access in os.supports_effective_ids
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK, effective_ids=effective)
