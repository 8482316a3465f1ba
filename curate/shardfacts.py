"""Counts a shard step adds up over its shards for its manifest facts (:meth:`curate.step.Step.summary`),
such as the texts a model cut at its context.

Shards run in worker processes, on threads or in Ray actors, so a count kept on the step instance
would reach the summary from none of them. Each shard writes its facts instead, as a small JSON file
in the step's artifacts (``shard-facts/shard-NNNNN.json``; on a cluster the run directory is on a
filesystem every node mounts, as for embeddings), and the summary adds them up. A shard done again
writes its file again; a shard done by an earlier try of the run keeps the file it wrote then.
Nothing is written to the step's rows, so its outputs do not change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curate.runfiles import read_json
from curate.shards import write_json_atomic
from curate.step import StepContext

FACTS_DIR = "shard-facts"
CUT_SHARE = 0.05  # more than this share of a step's texts cut at its model's context: a warning


def write_shard_facts(ctx: StepContext, facts: dict[str, Any]) -> None:
    """Store this shard's ``facts`` (JSON-able) for :func:`read_shard_facts`."""
    folder = ctx.artifacts / FACTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(facts, folder / f"shard-{ctx.shard or 0:05d}.json")


def read_shard_facts(artifacts: Path) -> list[dict[str, Any]]:
    """Every shard's facts, in shard order; what is not a JSON object in a regular file is left out."""
    out = []
    for path in sorted((artifacts / FACTS_DIR).glob("shard-*.json")):
        try:
            facts = read_json(path)
        except (OSError, ValueError):
            continue
        if isinstance(facts, dict):
            out.append(facts)
    return out


def summed(facts: list[dict[str, Any]], key: str) -> dict[str, int]:
    """``{name: count}`` under ``key`` in every shard's facts, added up (names in first-seen order)."""
    total: dict[str, int] = {}
    for fact in facts:
        counts = fact.get(key)
        if isinstance(counts, dict):
            for name, count in counts.items():
                if _whole(count):
                    total[name] = total.get(name, 0) + count
    return total


def largest(facts: list[dict[str, Any]], key: str) -> int | None:
    """The largest whole number under ``key`` in the shards' facts (such as a model's context in
    tokens), or None where no shard stored one."""
    values = [fact[key] for fact in facts if _whole(fact.get(key))]
    return max(values) if values else None


def cut_too_often(cut: int, total: int) -> bool:
    """Whether ``cut`` is more than :data:`CUT_SHARE` of ``total`` texts (never of none)."""
    return bool(total) and cut > CUT_SHARE * total


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
