"""Whether the files a run's manifest reports are still there: what ``curate inspect`` checks.

``inspect`` printed a run's funnel and "status complete" from the manifest alone, with the whole
store deleted or a step's shard cut short; the run directory's DuckDB views then failed with raw
DuckDB errors. It now runs the check a cached run makes before reusing a step
(``runstore.cache_problem``) on each finished step, with each recorded file checked by its size
(one ``stat``), or with ``--verify`` by its fingerprint (every byte read, as a cached run does),
and its input against the one it ran on (a step since recomputed with other rows in a shared
store: ``curate.inputdigest``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curate.runstore import COMPLETE, NOT_STORED, cache_problem


def stored_problems(manifest: dict[str, Any], verify: bool = False) -> list[tuple[str, str]]:
    """``(step label, what is wrong)`` for each finished step of ``manifest`` whose stored files
    are not what its marker recorded."""
    found = []
    before: dict[str, str] = {}  # the steps before, label by folder: each step's input (curate.inputdigest)
    for record in manifest.get("steps", []):
        path = record.get("path")
        if record.get("complete") and isinstance(path, str):
            problem = _problem(Path(path), verify, dict(before))
            if problem is not None:
                found.append((str(record.get("label")), problem))
        if isinstance(path, str):
            before[Path(path).name] = str(record.get("label"))
    return found


def _problem(step_dir: Path, verify: bool, before: dict[str, str]) -> str | None:
    if not step_dir.is_dir():
        return f"its folder {step_dir} is gone"
    if not (step_dir / COMPLETE).is_file():
        return f"its marker {step_dir / COMPLETE} is missing"
    problem = cache_problem(step_dir, sizes_only=not verify, before=before)
    return None if problem == NOT_STORED else problem
