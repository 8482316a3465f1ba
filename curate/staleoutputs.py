"""Outputs in a run directory that hold an earlier run's rows, not the last spec's.

A run writes its outputs one after another, each whole or not at all (written aside and renamed).
A run that fails between two of them (a full disk while writing ``curated.csv``), or a spec whose
change dropped an output, left the earlier run's file beside the new ones: ``curated.parquet`` with
the new spec's rows, ``curated.csv`` with the old spec's, nothing on disk telling them apart. The
manifest now lists each such file under ``stale_outputs`` with the run that wrote it, a warning
says so at the end of the run, and ``curate inspect`` shows it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any



class StaleOutputWarning(UserWarning):
    """Files in the run directory that an earlier run wrote and the last one did not."""


def earlier_outputs(run_dir: Path) -> list[dict[str, Any]]:
    """The outputs the previous run in ``run_dir`` wrote (and those it already listed as stale),
    each with ``written_by`` (that run's spec hash and time): read before a new run replaces its
    manifest. None from a run directory written elsewhere (copied: its paths name the original's
    files) or without a readable manifest."""
    from curate.runstore import read_manifest

    from curate.errors import CurateError

    try:
        manifest = read_manifest(run_dir)
    except CurateError:  # none yet, or damaged: the run says so itself where it matters
        return []
    recorded = manifest.get("run_dir")
    if not isinstance(recorded, str) or Path(recorded).resolve() != Path(run_dir).resolve():
        return []
    written_by = {"spec_hash": manifest.get("spec_hash"), "started_at": manifest.get("started_at"),
                  "status": manifest.get("status")}
    found = [{"format": output["format"], "path": output["path"], "written_by": written_by}
             for output in manifest.get("outputs", [])]
    for output in manifest.get("stale_outputs", []) or []:
        if isinstance(output, dict) and isinstance(output.get("path"), str) and \
                isinstance(output.get("written_by"), dict):
            found.append(output)
    return found


def stale_outputs(earlier: list[dict[str, Any]], written: list[dict[str, Any]], spec_hash: str,
                  outputs: list[str]) -> list[dict[str, Any]]:
    """Of ``earlier``, the local files this run did not write again and that are still there: all
    of them from another spec, or from this one (``spec_hash``) where it no longer names them
    among its ``outputs`` (resolved paths); an output of this very spec is its rows."""
    from curate.remote import is_url

    fresh = {_key(output["path"]) for output in written}
    named = {_key(path) for path in outputs}
    stale, seen = [], set()
    for output in earlier:
        path = output["path"]
        if is_url(path) or _key(path) in fresh or _key(path) in seen or not Path(path).exists():
            continue
        if output["written_by"].get("spec_hash") == spec_hash and _key(path) in named:
            continue
        seen.add(_key(path))
        stale.append(output)
    return stale


def say_stale(stale: list[dict[str, Any]], failed: bool) -> None:
    if not stale:
        return
    why, fix = (("this run failed before writing it again", "the next complete run writes it again")
                if failed else ("this spec no longer writes it", "delete what is not wanted"))
    listed = "; ".join(f"{output['path']} (run started {output['written_by'].get('started_at')}, spec hash "
                       f"{str(output['written_by'].get('spec_hash'))[:12]})" for output in stale)
    counted = f"{len(stale)} outputs in the run directory still hold" if len(stale) > 1 else \
        "1 output in the run directory still holds"
    warnings.warn(f"{counted} an earlier run's rows, not this spec's ({why}): {listed}; the manifest lists "
                  f"them under stale_outputs; {fix}", StaleOutputWarning, stacklevel=2)


def _key(path: str) -> str:
    return str(Path(path).resolve())
