"""Variant patches (curate_train/patch.py): a patch changes exactly the path it addresses; a
path that addresses nothing is a problem naming the closest step label or key."""

from __future__ import annotations

import copy

from hypothesis import given
from hypothesis import strategies as st

from curate_train.patch import Insert, PatchError, Variant, apply_patch, set_path, step_labels

LABELS = ["normalize_text", "dedup", "clip_score", "clip_filter", "sample", "mix", "select"]
keys = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)
values = st.one_of(st.integers(-5, 5), st.floats(0.01, 1.0), st.text("abc", max_size=4), st.booleans(),
                   st.lists(st.integers(0, 3), max_size=3))


@st.composite
def specs(draw):
    labels = draw(st.lists(st.sampled_from(LABELS), min_size=1, max_size=5, unique=True))
    steps = [{"step": label, "params": draw(st.dictionaries(keys, values, max_size=3))} for label in labels]
    return {"name": "base", "source": {"format": "parquet", "path": "pool.parquet"}, "steps": steps,
            "run": {"seed": 0}}


def without(data, path_parts):
    """``data`` with the value at ``path_parts`` (steps addressed by label) taken out."""
    out = copy.deepcopy(data)
    node = out
    for part in path_parts[:-1]:
        node = node[step_labels(node).index(part)] if isinstance(node, list) else node[part]
    node.pop(path_parts[-1], None)
    return out


@given(specs(), st.data(), values)
def test_set_changes_exactly_the_addressed_param(base, data, value):
    step = data.draw(st.sampled_from(base["steps"]))
    key = data.draw(st.one_of(st.sampled_from(sorted(step["params"])) if step["params"] else keys, keys))
    path = f"steps.{step['step']}.params.{key}"
    patched, problems = apply_patch(base, Variant(name="v", set={path: value}))
    assert problems == []
    assert patched["steps"][step_labels(patched["steps"]).index(step["step"])]["params"][key] == value
    parts = ["steps", step["step"], "params", key]
    assert without(patched, parts) == without(base, parts)  # nothing else moved
    assert base == apply_patch(base, Variant(name="same"))[0]  # the base itself is never changed


@given(specs(), st.data(), values)
def test_a_step_addressed_by_position_is_the_same_step_as_by_label(base, data, value):
    index = data.draw(st.integers(0, len(base["steps"]) - 1))
    by_position = apply_patch(base, Variant(name="v", set={f"steps.{index}.params.k": value}))[0]
    by_label = apply_patch(base, Variant(name="v", set={f"steps.{base['steps'][index]['step']}.params.k": value}))[0]
    assert by_position == by_label


@given(specs(), st.data())
def test_a_mistyped_label_is_a_problem_naming_the_closest_label(base, data):
    step = data.draw(st.sampled_from(base["steps"]))["step"]
    typo = step[:-1] + ("x" if step[-1] != "x" else "y")
    patched, problems = apply_patch(base, Variant(name="v1", set={f"steps.{typo}.params.top": 0.5}))
    assert len(problems) == 1
    assert problems[0].path == f"variants.v1.set.steps.{typo}.params.top"
    assert f"no step labelled '{typo}'" in problems[0].message
    assert f"did you mean '{step}'?" in problems[0].hint
    assert patched == base  # a failed set changes nothing


@given(specs(), st.data())
def test_a_missing_middle_key_is_a_problem_naming_the_closest_key(base, data):
    step = data.draw(st.sampled_from(base["steps"]))["step"]
    _, problems = apply_patch(base, Variant(name="v", set={f"steps.{step}.parms.top": 0.5}))
    assert len(problems) == 1 and "has no key 'parms'" in problems[0].message
    assert "did you mean 'params'?" in problems[0].hint


@given(specs(), st.data())
def test_remove_and_insert_touch_only_the_steps_named(base, data):
    removed = data.draw(st.sampled_from(base["steps"]))["step"]
    kept = [s for s in base["steps"] if s["step"] != removed]
    patched, problems = apply_patch(base, Variant(name="v", remove=[removed]))
    assert problems == [] and patched["steps"] == kept
    anchor = data.draw(st.sampled_from(base["steps"]))["step"]
    new = {"step": "filter", "name": "new_one", "params": {"where": "true"}}
    for key, offset in (("after", 1), ("before", 0)):
        patched, problems = apply_patch(base, Variant(name="v", insert=[Insert(**{key: anchor, "steps": [new]})]))
        position = step_labels(base["steps"]).index(anchor) + offset
        assert problems == []
        assert patched["steps"] == base["steps"][:position] + [new] + base["steps"][position:]
    _, problems = apply_patch(base, Variant(name="v", remove=[removed + "_"], insert=[Insert(after="nope", steps=[new])]))
    assert [p.path for p in problems] == ["variants.v.remove", "variants.v.insert[0].after"]


def test_null_removes_a_key_and_a_scalar_cannot_be_walked_into():
    base = {"source": {"path": "a"}, "steps": [{"step": "sample", "params": {"count": 3, "seed": 1}}]}
    patched, problems = apply_patch(base, Variant(name="v", set={"steps.sample.params.seed": None}))
    assert problems == [] and patched["steps"][0]["params"] == {"count": 3}
    data = copy.deepcopy(base)
    try:
        set_path(data, "source.path.deeper", 1)
    except PatchError as error:
        assert "not a mapping or a list" in error.message
    else:  # pragma: no cover
        raise AssertionError("walking into a string must fail")


@given(specs(), st.data())
def test_each_patched_step_is_traced_to_where_it_was_written(base, data):
    # What lets `curate experiment validate` name the line of a problem in a variant's plan.
    from curate_train.patch import traced_patch

    removed = data.draw(st.lists(st.sampled_from(step_labels(base["steps"])), max_size=2, unique=True))
    inserts = [Insert(steps=[{"step": "filter", "name": f"new_{n}_{k}"} for k in range(data.draw(st.integers(1, 2)))],
                      **({"after": data.draw(st.sampled_from(step_labels(base["steps"])))} if n else {}))
               for n in range(data.draw(st.integers(0, 2)))]
    replaced = data.draw(st.sampled_from(step_labels(base["steps"])))
    variant = Variant(name="v", remove=removed, insert=inserts, set={f"steps.{replaced}": {"step": "sample"}})
    lines = {"remove": 1, "insert": 2, "set": 3}  # where each part of the variant is, as told to traced_patch
    patched, problems, origins = traced_patch(base, variant, locate=lambda loc: lines[loc[0]])
    assert len(origins) == len(patched["steps"])
    for step, origin in zip(patched["steps"], origins):
        if origin is None:  # written whole by set
            assert step == {"step": "sample"}
        elif origin[0] == "base":
            assert step == base["steps"][origin[1]] and step["step"] not in removed
        else:
            assert step == inserts[origin[1]].steps[origin[2]]
    assert all(p.line == lines[p.path.split(".")[2].split("[")[0]] for p in problems)
