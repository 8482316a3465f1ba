"""What curate's own JSON records must hold when read back: the manifest's fields, a step's
marker (``_COMPLETE.json``) and a shard's (``shards/NNNNN.json``).

A store may come from elsewhere (a colleague's ``cache_dir``, a run someone sent), and a marker
whose counts were text made ``curate run`` stop on an internal error while summing them, after
writing a manifest that every later command called damaged; fields a marker has no business
holding (``path``, ``label``, ``index``) went into the step's manifest record over the engine's
own, so the run's views and report read the rows of whatever folder a marker named. A record
of the wrong shape is not believed (its step or shard is recomputed), and only the fields
listed here are taken from a marker.
"""

from __future__ import annotations

import json
from typing import Any

TEXT, COUNT, NUMBER = (str, type(None)), (int, type(None)), (int, float, type(None))

# A step's marker, as the engine writes it (curate.engine, curate.ingest); these fields, and no
# others, go into the step's manifest record (``files`` stays in the store).
STEP_MARKER_FIELDS: dict[str, tuple[type, ...]] = {
    "rows_in": COUNT, "rows_out": COUNT, "dropped": (dict,), "shards": COUNT, "seconds": NUMBER,
    "shard_seconds": NUMBER, "group_seconds": NUMBER, "finished_at": TEXT, "summary": (dict, type(None)),
    "files": (dict,), "kept_rows_stored": (bool,), "retried_rows": COUNT, "images": (dict,),
    "input_digest": (str,), "input_from": (str,),
}
SHARD_MARKER_FIELDS: dict[str, tuple[type, ...]] = {
    "index": (int,), "rows_in": (int,), "rows_out": (int,), "dropped": (dict,), "seconds": NUMBER,
    "members": (list, type(None)), "files": (dict, type(None)), "images": (dict, type(None)),
}
SHARD_REQUIRED = ("index", "rows_in", "rows_out")
# One member's facts in a fused group's shard marker (curate.fusion).
MEMBER_FIELDS: dict[str, tuple[type, ...]] = {
    "label": (str,), "rows_in": (int,), "rows_out": (int,), "dropped": (dict,), "seconds": NUMBER, "files": (dict,),
}
MEMBER_REQUIRED = ("rows_in", "rows_out", "dropped", "seconds")


def fields_problem(value: Any, fields: dict[str, tuple[type, ...]], required: tuple[str, ...],
                   where: str) -> str | None:
    """What is wrong with ``value``, a JSON object that should hold ``fields`` of these types
    (``required`` among them), None if nothing; ``where`` names it in the message."""
    if not isinstance(value, dict):
        return f"{where or 'it'} is {json_type(value)}, not an object"
    prefix = f"{where}." if where else ""
    for name in required:
        if name not in value:
            return f"{prefix}{name} is missing"
    for name, types in fields.items():
        if name not in value:
            continue
        item = value[name]
        # JSON true is a Python bool, which is an int: a count must not be one.
        if not isinstance(item, types) or (isinstance(item, bool) and bool not in types):
            wanted = " or ".join(dict.fromkeys(json_type(t) for t in types))
            return f"{prefix}{name} must be {wanted}, got {json.dumps(item)[:40]}"
    return None


def json_type(value: Any) -> str:
    kind = value if isinstance(value, type) else type(value)
    names = {dict: "an object", list: "an array", str: "a string", bool: "true or false", int: "an integer",
             float: "a number", type(None): "null"}
    return names.get(kind, kind.__name__)


def counts_problem(dropped: Any, where: str) -> str | None:
    """``dropped`` must map drop reasons to row counts."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in dropped.values()):
        return f"{where} must map drop reasons to row counts"
    return None


def files_problem(files: Any, where: str) -> str | None:
    """``files`` must map stored paths to their fingerprints (curate.shards.file_fingerprint)."""
    if not all(isinstance(v, str) for v in files.values()):
        return f"{where} must map stored files to their fingerprints"
    return None


def step_marker_problem(stats: Any) -> str | None:
    """What is wrong with a step's ``_COMPLETE.json`` read back (None: nothing)."""
    problem = fields_problem(stats, STEP_MARKER_FIELDS, (), "")
    if problem:
        return problem
    return (counts_problem(stats.get("dropped", {}), "dropped")
            or files_problem(stats.get("files", {}), "files")
            or files_problem(stats.get("images", {}), "images")
            or input_fields_problem(stats))


def input_fields_problem(stats: dict[str, Any]) -> str | None:
    """A marker's input (curate.inputdigest), where it has one: ``input_digest``, a SHA-256 in
    hex, and ``input_from``, a step's fingerprint (its folder in the store, a path curate opens)."""
    digest, source = stats.get("input_digest"), stats.get("input_from")
    if digest is None and source is None:
        return None
    if digest is None or source is None:
        return f"{'input_digest' if digest is None else 'input_from'} is missing beside the other"
    if not _hex(digest, 64):
        return f"input_digest must be 64 hexadecimal digits, got {json.dumps(digest)[:40]}"
    if not _hex(source, 20):
        return f"input_from must be a step's fingerprint, 20 hexadecimal digits, got {json.dumps(source)[:40]}"
    return None


def _hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdef" for c in text)


def shard_marker_problem(data: Any) -> str | None:
    """What is wrong with a shard's marker read back (None: nothing)."""
    problem = fields_problem(data, SHARD_MARKER_FIELDS, SHARD_REQUIRED, "")
    if problem:
        return problem
    problem = (counts_problem(data.get("dropped", {}), "dropped")
               or files_problem(data.get("files") or {}, "files")
               or files_problem(data.get("images") or {}, "images"))
    if problem:
        return problem
    for index, facts in enumerate(data.get("members") or []):
        where = f"members[{index}]"
        problem = (fields_problem(facts, MEMBER_FIELDS, MEMBER_REQUIRED, where)
                   or counts_problem(facts["dropped"], f"{where}.dropped")
                   or files_problem(facts.get("files", {}), f"{where}.files"))
        if problem:
            return problem
    return None


def marker_facts(stats: dict[str, Any]) -> dict[str, Any]:
    """A step's marker as its manifest record shows it: the fields the engine writes there,
    without the fingerprints of its files and images and its input's digest (the store's
    business, a line per file)."""
    return {key: value for key, value in stats.items()
            if key in STEP_MARKER_FIELDS and key not in ("files", "images", "input_digest", "input_from")}
