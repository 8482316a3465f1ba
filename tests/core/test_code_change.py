"""A re-run after an upgrade that moved a step's version recomputes it and every step after it:
curate says so, naming the step and why, instead of only leaving "cached" out of the funnel
(a quickstart re-run after ``download`` went to version 2 took 4 minutes without a word)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from curate_basics.filter import Filter

from curate.codechange import CodeChangedWarning
from curate.engine import Engine
from curate.plan import make_plan
from curate.spec import load_spec
from tests.conftest import sample_table

STEPS = [{"step": "filter", "params": {"where": "score >= 0.2", "reason": "low"}},
         {"step": "exact_dedup", "params": {"columns": ["url"]}}]


def run(pm, write_spec, workdir: Path, steps: list = STEPS) -> dict:
    first = not (workdir / "data.parquet").exists()  # written once: a rewrite is another source
    path = write_spec({"name": "upgrade", "source": {"path": "data.parquet"}, "steps": steps,
                       "run": {"dir": "run", "shard_size": 40}}, table=sample_table(90) if first else None)
    return Engine(make_plan(load_spec(path), pm, workdir / "run"), pm).run()


def said(pm, write_spec, workdir: Path, steps: list = STEPS) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manifest = run(pm, write_spec, workdir, steps)
    assert not manifest["steps"][1]["cached"]
    return [str(w.message) for w in caught if issubclass(w.category, CodeChangedWarning)]


def test_a_step_whose_version_moved_says_so_with_both_versions(pm, write_spec, workdir, monkeypatch):
    first = run(pm, write_spec, workdir)
    assert "step_version" not in first["steps"][0] and first["steps"][1]["step_version"] == "1"
    monkeypatch.setattr(Filter, "version", "2")
    [message] = said(pm, write_spec, workdir)  # one: exact_dedup follows its input
    assert message.startswith("step 'filter' is recomputed, though its params and input are those of the "
                              f"last run here ({first['started_at']}): its version changed (1 → 2")
    assert run(pm, write_spec, workdir)["steps"][1]["cached"]  # said once: the next run reuses it


def test_a_run_that_did_not_record_versions_gets_the_causes_it_may_be(pm, write_spec, workdir, monkeypatch):
    run(pm, write_spec, workdir)
    manifest = json.loads((workdir / "run" / "manifest.json").read_text())
    for record in manifest["steps"]:  # as 49fd555 wrote them
        record.pop("step_version", None)
    (workdir / "run" / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(Filter, "version", "2")
    [message] = said(pm, write_spec, workdir)
    assert "its version (now 2; the last run's curate did not record it) or what it reads besides" in message


def test_a_changed_param_is_no_code_change(pm, write_spec, workdir, monkeypatch):
    run(pm, write_spec, workdir)
    monkeypatch.setattr(Filter, "version", "2")
    edited = [{**STEPS[0], "params": {"where": "score >= 0.3", "reason": "low"}}, STEPS[1]]
    assert said(pm, write_spec, workdir, edited) == []  # the user changed it: nothing to explain
    monkeypatch.setattr(Filter, "version", "3")
    assert [m.split(" (")[0] for m in said(pm, write_spec, workdir, edited)] == [
        "step 'filter' is recomputed, though its params and input are those of the last run here"]
