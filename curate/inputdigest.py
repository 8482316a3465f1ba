"""What a step's stored output was computed from: a digest of its input as it was when it ran.

Step folders in the store are named by the spec's fingerprint chain (step, params, plugin
version, the upstream step's fingerprint): what a step *should* compute, not what its input
*held*. A step recomputed in its folder (its files damaged or deleted, its images lost) may give
other rows than before (a transient HTTP failure, a nondeterministic model), and every later
step whose folder was intact was reused with rows computed from the old ones: silent wrong
output. Now each step's marker records what it read from the store: ``input_from``, the
fingerprint (folder) of that step, and ``input_digest``, the :func:`marker_digest` of its marker
then. That marker holds its own input digest, so the chain is transitive (a step that reads an
earlier step's artifacts through ctx ``upstream`` is covered too). A step whose recorded digest is
not that marker's now is recomputed (``runstore.cache_problem``).

What a step read from the store: the step before it, for a step that runs alone; for a fused
group (``curate.fusion``, one cache unit), what the group read: the step before its head (none
for a source head: the source's identity is its fingerprint), or a reused head's rows for its
followers. Every member records the group's input, so a member is checked the same way whether
it runs fused or alone later (a member stores its kept rows only as its group's last).

The digest covers what identifies a step's output: its stored files' fingerprints, its images,
row counts and its own input; never timings (``seconds``, ``finished_at``) or the summary. A
deterministic recompute stores byte-identical files, so its digest is unchanged and nothing after
it is recomputed.

Leftovers of an unfinished step (a shard step's finished shards, a download's finished parts)
are reused on resume: a step that computes in its folder records first the digest of the input it
computes from (``_INPUT.json``, :func:`record_input`); leftovers computed from another input are
removed before it runs (``curate.engine``), so a resumed step never mixes shards of two inputs.

A marker written before this (no ``input_digest``) is trusted as before: recomputing every
cached step of an existing store on upgrading would cost more than it guards against.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.runfiles import COMPLETE, read_json
from curate.shapes import step_marker_problem
from curate.shards import write_json_atomic

INPUT_RECORD = "_INPUT.json"  # in a step's folder: the input digest its leftovers were computed from

# A marker's fields that identify the step's output; the others (timings, the summary) may differ
# between two runs that stored the same files.
IDENTITY_FIELDS = ("rows_in", "rows_out", "dropped", "shards", "kept_rows_stored", "files", "images",
                   "input_digest", "input_from")


@dataclass(frozen=True)
class StepInput:
    """The stored output a step (or a fused group) computes from: that step's label, its
    fingerprint (its folder in the store) and the digest of its marker."""

    label: str
    fingerprint: str
    digest: str

    def fields(self) -> dict[str, str]:
        """As a marker records it."""
        return {"input_digest": self.digest, "input_from": self.fingerprint}


def marker_digest(stats: dict[str, Any]) -> str:
    """SHA-256 (hex) of the fields of a step's marker that identify its output."""
    identity = {key: stats[key] for key in IDENTITY_FIELDS if key in stats}
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def step_digest(step_dir: Path) -> str | None:
    """The :func:`marker_digest` of the step in ``step_dir`` as its marker says it now; None when
    it has no marker of the shape curate writes (not complete, or damaged: it is recomputed)."""
    try:
        stats = read_json(Path(step_dir) / COMPLETE)
    except (OSError, ValueError):
        return None
    return None if step_marker_problem(stats) else marker_digest(stats)


CHANGED = "its input changed since it ran"


def changed(label: str) -> str:
    """Why a step is recomputed whose input, step ``label``, was recomputed since it ran."""
    return f"{CHANGED} (step '{label}' was recomputed)"


def input_problem(stats: dict[str, Any], step_dir: Path, before: dict[str, str] | None) -> str | None:
    """Why the step in ``step_dir``, whose marker is ``stats``, is not reusable on its input, or
    None: the marker of the step it read (``input_from``) has another digest now than
    ``input_digest``. ``before``: the steps before it, label by fingerprint (None: not checked);
    a marker naming another step is not believed. No check for a marker without an input digest
    (written before them, or the source's), nor when the step it read has no readable marker (it
    runs first: the engine checks each step once the steps before it are finished)."""
    recorded = stats.get("input_digest")
    if recorded is None or before is None:
        return None
    source = stats.get("input_from")
    if source not in before:
        return f"its marker names {source!r} as its input, which is not a step before it"
    current = step_digest(Path(step_dir).parent / source)
    if current is None or current == recorded:
        return None
    return changed(before[source])


def computed_from(step_dir: Path) -> str | None:
    """The input digest the leftovers in ``step_dir`` were computed from, as its
    :data:`INPUT_RECORD` says; None when there is none (no folder, or one written before input
    digests, whose leftovers are trusted as before); "" for a record that cannot be read as one
    (damaged: its leftovers are not trusted)."""
    path = Path(step_dir) / INPUT_RECORD
    if not os.path.lexists(path):
        return None
    try:
        value = read_json(path)
    except (OSError, ValueError):
        return ""
    digest = value.get("input_digest") if isinstance(value, dict) else None
    return digest if isinstance(digest, str) else ""


def record_input(step_dir: Path, digest: str) -> None:
    """Record in ``step_dir`` that what is computed there from now on comes from ``digest``."""
    step_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic({"input_digest": digest}, step_dir / INPUT_RECORD)
