"""Whether the files a run's manifest reports are still there: what ``curate inspect`` checks.

``inspect`` printed a run's funnel and "status complete" from the manifest alone, with the whole
store deleted or a step's shard cut short; the run directory's DuckDB views then failed with raw
DuckDB errors. It now looks at each finished step's marker and the files it recorded: present,
and of the recorded sizes (one ``stat`` each), or with ``--verify`` their fingerprints too (every
byte read, as a cached run checks before reusing a step: ``runstore.cache_problem``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curate.runfiles import read_json
from curate.runstore import COMPLETE, NOT_STORED, cache_problem
from curate.shapes import step_marker_problem


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
    if verify:
        problem = cache_problem(step_dir)
        return None if problem == NOT_STORED else problem
    marker = step_dir / COMPLETE
    if not marker.is_file():
        return f"its marker {marker} is missing"
    try:
        stats = read_json(marker)
    except Exception as exc:  # damaged: said, never believed
        return f"its marker {marker} cannot be read ({type(exc).__name__}: {exc})"
    if (problem := step_marker_problem(stats)) is not None:
        return f"its marker {marker} is damaged: {problem}"
    for name, fingerprint in sorted(stats.get("files", {}).items()):
        path = step_dir / name
        size = _recorded_size(fingerprint)
        if not path.is_file():
            return f"{path}, which its marker recorded, is missing"
        if size is not None and path.stat().st_size != size:
            return f"{path} holds {path.stat().st_size:,} bytes, its marker recorded {size:,}"
    return None


def _recorded_size(fingerprint: Any) -> int | None:
    """The size in a fingerprint (``"1234 bytes, crc32 …"``: curate.shards.file_fingerprint)."""
    head = str(fingerprint).split(" ", 1)[0]
    return int(head) if head.isdigit() else None
