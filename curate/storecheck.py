"""Whether the files a run's manifest reports are still there: what ``curate inspect`` checks.

``inspect`` printed a run's funnel and "status complete" from the manifest alone, with the whole
store deleted or a step's shard cut short; the run directory's DuckDB views then failed with raw
DuckDB errors. It now runs the check a cached run makes before reusing a step
(``runstore.cache_problem``) on each finished step, with each recorded file checked by its size
(one ``stat``), or with ``--verify`` by its fingerprint (every byte read, as a cached run does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curate.runstore import COMPLETE, NOT_STORED, cache_problem


def stored_problems(manifest: dict[str, Any], verify: bool = False) -> list[tuple[str, str]]:
    """``(step label, what is wrong)`` for each finished step of ``manifest`` whose stored files
    are not what its marker recorded."""
    found = []
    for record in manifest.get("steps", []):
        if not record.get("complete") or not isinstance(record.get("path"), str):
            continue
        problem = _problem(Path(record["path"]), verify)
        if problem is not None:
            found.append((str(record.get("label")), problem))
    return found


def _problem(step_dir: Path, verify: bool) -> str | None:
    if not step_dir.is_dir():
        return f"its folder {step_dir} is gone"
    if not (step_dir / COMPLETE).is_file():
        return f"its marker {step_dir / COMPLETE} is missing"
    problem = cache_problem(step_dir, sizes_only=not verify)
    return None if problem == NOT_STORED else problem
