"""Point a moved or copied run directory at where it now lies: ``curate relocate``.

A run's manifest and its ``curate.duckdb`` views name the files of each step by absolute path. A
run directory moved, copied or unpacked from an archive kept reading the original's files, and once
those were gone its views failed ("No files found") and nothing re-pointed them: ``curate run
--resume`` rewrote them only where the spec's source data was still there to plan with. This
rewrites the manifest's paths (the run directory, its store, each step's folder, the outputs
written inside the run directory) for the new place and writes the views again, reading nothing
but what the run directory holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curate.errors import RunDirError


def relocate(run_dir: Path, store: Path | None = None) -> tuple[dict[str, Any], list[str]]:
    """Rewrite ``run_dir``'s manifest and views for where it lies now (its store at ``store``, or
    where it was inside the run directory); returns the new manifest and what changed."""
    from curate.lock import locked
    from curate.runstore import read_manifest, write_manifest, write_views
    from curate.storeusers import moved_registration
    from curate.views import VIEWS_ERROR

    run_dir = Path(run_dir).resolve()
    with locked([(run_dir, "run directory")]):
        manifest = read_manifest(run_dir)
        old_run, old_store = _recorded(manifest, "run_dir"), _recorded(manifest, "store_dir")
        new_store = _new_store(run_dir, old_run, old_store, store)
        changed = []
        for record in manifest.get("steps", []):
            moved = _moved(record.get("path"), old_store, new_store)
            if moved is not None:
                record["path"] = moved
        for key in ("outputs", "stale_outputs"):
            for output in manifest.get(key, []):
                moved = _moved(output.get("path"), old_run, run_dir)
                if moved is not None:
                    output["path"] = moved
        if old_run != run_dir:
            changed.append(f"run directory {old_run} → {run_dir}")
        if old_store != new_store:
            changed.append(f"store {old_store} → {new_store}")
        manifest["run_dir"], manifest["store_dir"] = str(run_dir), str(new_store)
        write_views(run_dir, manifest)
        manifest.pop(VIEWS_ERROR, None)  # written now (curate.views)
        write_manifest(run_dir, manifest)
        if old_run != run_dir:  # the store knows the run directory by its new place too (curate gc)
            moved_registration(new_store, old_run, run_dir)
    return manifest, changed


def _recorded(manifest: dict[str, Any], key: str) -> Path:
    value = manifest.get(key)
    if not isinstance(value, str) or not Path(value).is_absolute():
        raise RunDirError(f"the manifest's {key} is {value!r}, not an absolute path: this run directory cannot be "
                          f"relocated", "run its spec again into it instead (finished steps are reused)")
    return Path(value)


def _new_store(run_dir: Path, old_run: Path, old_store: Path, given: Path | None) -> Path:
    if given is not None:
        store = Path(given).resolve()
    elif old_store.is_relative_to(old_run):
        store = run_dir / old_store.relative_to(old_run)
    else:
        raise RunDirError(f"this run's store was {old_store}, outside its run directory {old_run}, and was not moved "
                          f"with it", "pass where the store is now: curate relocate RUN_DIR --store DIR")
    if not store.is_dir():
        raise RunDirError(f"the store {store} is not a folder", "pass where the run's store is now with --store DIR")
    return store


def _moved(path: Any, old: Path, new: Path) -> str | None:
    if not isinstance(path, str) or not Path(path).is_relative_to(old):
        return None
    return str(new / Path(path).relative_to(old))
