from __future__ import annotations

import polars as pl
import pytest

from curate.errors import SpecError
from curate.hookspecs import hookimpl
from curate.plan import make_plan, plan_rows
from curate.spec import load_spec
from curate.step import Step
from tests.conftest import sample_table


def plan_of(pm, write_spec, steps, **source):
    path = write_spec({"source": {"path": "data.parquet", **source}, "steps": steps})
    if not (path.parent / "data.parquet").exists():  # once: its mtime is part of the source fingerprint
        sample_table().write_parquet(path.parent / "data.parquet")
    return make_plan(load_spec(path), pm, path.parent / "run")


def problems_of(pm, write_spec, steps) -> list[str]:
    with pytest.raises(SpecError) as caught:
        plan_of(pm, write_spec, steps)
    return [f"{p.path}: {p.message}" for p in caught.value.problems]


def test_the_plan_pushes_the_schema_through_every_step(pm, write_spec):
    plan = plan_of(pm, write_spec, [
        {"step": "sql", "params": {"query": "SELECT uid, alt_text, length(alt_text) AS n FROM input"}},
        {"step": "rename", "params": {"mapping": {"n": "chars"}}},
        {"step": "filter", "params": {"where": "chars > 3"}},
    ])
    rows = plan_rows(plan)
    assert [r["label"] for r in rows] == ["source", "sql", "rename", "filter"]
    assert rows[0]["writes"] == {"uid": "String", "url": "String", "alt_text": "String", "score": "Float64",
                                 "lang": "String"}
    assert rows[1]["writes"] == {"n": "Int64"} and rows[1]["removes"] == ["url", "score", "lang"]
    assert rows[2]["writes"] == {"chars": "Int64"} and rows[2]["removes"] == ["n"]
    assert list(plan.steps[-1].output_schema) == ["uid", "alt_text", "chars"]
    assert not any(r["cached"] for r in rows)


@pytest.mark.parametrize("steps, expected", [
    ([{"step": "rename", "params": {"mapping": {"alt_text": "_drop_reason"}}}],
     "steps[0].params: the step's output would have a column '_drop_reason', which curate reserves"),
    ([{"step": "sql", "params": {"query": "SELECT *, uid AS _duplicate_of FROM input"}}],
     "steps[0].params: the step's output would have a column '_duplicate_of', which curate reserves"),
    ([{"step": "normalize_text", "params": {"columns": ["score"]}}],
     "steps[0].step: step 'normalize_text' reads 'score' as String, but upstream it is Float64"),
    ([{"step": "select", "params": {"columns": ["url"]}}, {"step": "filter", "params": {"where": "score > 1"}}],
     "steps[1].params: 'where' does not run on the input table"),
])
def test_plan_time_problems(pm, write_spec, steps, expected):
    assert any(p.startswith(expected) for p in problems_of(pm, write_spec, steps)), problems_of(pm, write_spec,
                                                                                              steps)


class LosesUid(Step):
    name = "loses_uid"

    def output_schema(self, input_schema):
        return {k: v for k, v in input_schema.items() if k != "uid"}


class Versioned(Step):
    name = "versioned"
    version = "1"
    writes = {"flag": pl.Boolean}


class Plugin:
    @hookimpl
    def curate_register_steps(self):
        return [LosesUid, Versioned]


def test_a_step_that_would_lose_uid_is_a_plan_problem(pm, register_plugin, write_spec):
    register_plugin(Plugin(), "test_steps")
    assert "steps[0].params: the step's output would lose the 'uid' column" in problems_of(
        pm, write_spec, [{"step": "loses_uid"}])


def test_fingerprints_change_with_params_step_version_and_plugin_version(pm, register_plugin, write_spec,
                                                                         monkeypatch):
    register_plugin(Plugin(), "test_steps", version="1.0")
    steps = [{"step": "versioned"}, {"step": "filter", "params": {"where": "flag IS NULL"}}]
    base = [p.fingerprint for p in plan_of(pm, write_spec, steps).steps]
    assert [p.fingerprint for p in plan_of(pm, write_spec, steps).steps] == base  # deterministic

    monkeypatch.setattr(Versioned, "version", "2")
    bumped = [p.fingerprint for p in plan_of(pm, write_spec, steps).steps]
    assert bumped[0] == base[0] and bumped[1] != base[1] and bumped[2] != base[2]
    monkeypatch.undo()

    pm.infos["test_steps"].version = "1.1"
    upgraded = [p.fingerprint for p in plan_of(pm, write_spec, steps).steps]
    assert upgraded[0] == base[0] and upgraded[1] != base[1] and upgraded[2] != base[2]


def test_the_source_fingerprint_covers_mapping_and_shard_size(pm, write_spec):
    base = plan_of(pm, write_spec, []).steps[0].fingerprint
    assert plan_of(pm, write_spec, [], keep=["score"]).steps[0].fingerprint != base
    assert plan_of(pm, write_spec, [], uid_columns=["url"]).steps[0].fingerprint != base
