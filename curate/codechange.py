"""Why a step is recomputed though nothing in the spec changed: its code did (an upgrade of curate
or of its plugin moved the step's version, and with it its fingerprint).

A re-run after an upgrade that recomputes ``download`` and everything after it (minutes to hours)
said nothing about why: the funnel only lacked "cached". Before a run replaces the manifest, each
step whose params and input are those the last run here recorded, but whose fingerprint is not,
and which has no finished folder of its own to reuse, is named once, with the versions when both
runs recorded them (manifests before 2026-12-07 did not record a step's version).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from curate.errors import CurateError
from curate.plan import Plan, PlannedStep


class CodeChangedWarning(UserWarning):
    """A step whose params and input are the last run's is recomputed: its code changed."""


def last_run(run_dir: Path) -> dict[str, Any]:
    """The manifest the last run here wrote ({} without a readable one)."""
    from curate.runstore import read_manifest

    try:
        return read_manifest(run_dir)
    except CurateError:  # none yet, or damaged: the run says so itself where it matters
        return {}


def say_code_changes(plan: Plan, last: dict[str, Any]) -> None:
    """A :class:`CodeChangedWarning` for each step the run will recompute only because its code
    changed since the last run here (``last``: its manifest)."""
    steps = last.get("steps")
    by_index = {s.get("index"): s for s in steps if isinstance(s, dict)} if isinstance(steps, list) else {}
    when = f" ({last['started_at']})" if isinstance(last.get("started_at"), str) else ""
    for planned in plan.steps:
        before, upstream = by_index.get(planned.index), by_index.get(planned.index - 1)
        if planned.step is None or before is None or upstream is None:
            continue
        if (before.get("label"), before.get("step")) != (planned.label, planned.kind) \
                or before.get("fingerprint") == planned.fingerprint \
                or upstream.get("fingerprint") != plan.steps[planned.index - 1].fingerprint \
                or before.get("params") != json.loads(json.dumps(planned.params)) \
                or (planned.step.random and last.get("seed") != plan.spec.run.seed):
            continue  # the same step, or another one, or one its spec, seed or input changed for
        if plan.cache_problem(planned) is None:
            continue  # reused anyway, from a folder this version wrote (a run before the last)
        warnings.warn(f"step '{planned.label}' is recomputed, though its params and input are those of the "
                      f"last run here{when}: {_why(planned, before)}; the steps after it follow",
                      CodeChangedWarning, stacklevel=2)


def _why(planned: PlannedStep, before: dict[str, Any]) -> str:
    assert planned.step is not None
    now, then = planned.step.version, before.get("step_version")
    if then is not None and then != now:
        return f"its version changed ({then} → {now}: curate or its plugin was upgraded)"
    if before.get("plugin_version") != planned.plugin_version:
        return (f"plugin '{planned.plugin}' changed version ({before.get('plugin_version')} → "
                f"{planned.plugin_version})")
    if then is None:
        return (f"its version (now {now}; the last run's curate did not record it) or what it reads besides "
                "its params (a model's weights, a file it names) changed")
    return "what it reads besides its params changed (a model's weights, a file it names)"
