from __future__ import annotations

import pickle
import re
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from curate.errors import SpecError
from curate.hookspecs import hookimpl
from curate.plan import make_plan
from curate.spec import Spec, load_spec, load_spec_text
from curate.step import Step
from tests.conftest import sample_table

LABELS = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,12}\Z")
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
PARAMS = st.dictionaries(st.text(min_size=1, max_size=10), JSON, max_size=4)


@st.composite
def specs(draw) -> dict:
    labels = draw(st.lists(LABELS, max_size=5, unique=True))
    steps = [
        {"step": draw(LABELS), **({"name": label} if draw(st.booleans()) else {}), "params": draw(PARAMS)}
        for label in labels
    ]
    # Labels default to the step name; keep them unique as the spec requires.
    seen: set[str] = set()
    for step in steps:
        label = step.get("name") or step["step"]
        if label in seen:
            step["name"] = f"{label}_{len(seen)}"
        seen.add(step.get("name") or step["step"])
    return {
        "version": 1,
        "name": draw(st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_-]{0,19}\Z")),
        "description": draw(st.none() | st.text(max_size=40)),
        "source": {
            "format": draw(st.sampled_from(["auto", "parquet", "csv", "world"])),
            "path": draw(st.none() | st.text(max_size=30)),
            "columns": draw(st.dictionaries(st.sampled_from(["url", "alt_text", "width"]), st.text(max_size=10))),
            "keep": draw(st.none() | st.lists(st.text(max_size=10), max_size=3)),
            "uid_columns": draw(st.lists(st.sampled_from(["url", "alt_text", "width"]), min_size=1, max_size=3)),
            "params": draw(PARAMS),
        },
        "steps": steps,
        "outputs": [
            {"format": draw(st.sampled_from(["parquet", "csv", "uids"])), "path": draw(st.text(max_size=20)),
             "step": draw(st.none() | st.sampled_from(sorted(seen) or ["x"])), "params": draw(PARAMS)}
            for _ in range(draw(st.integers(0, 2)))
        ],
        "run": {
            # braces are placeholders ({name}); a lone one is refused (test_run_dir_safety)
            "dir": draw(st.text(max_size=20).map(lambda d: d.replace("{", "(").replace("}", ")"))
                        | st.just("runs/{name}")),
            "seed": draw(st.integers(-(2**63), 2**63)),
            "shard_size": draw(st.integers(1, 10**9)),
            "memory_limit": draw(st.sampled_from(["4GB", "512MB"])),
            "executor": {"name": draw(st.sampled_from(["local", "ray"])), "params": draw(PARAMS)},
            "cache_dir": draw(st.none() | st.text(max_size=20)),
            "report": draw(st.booleans()),
            "untrusted": draw(st.booleans()),
        },
    }


@given(data=specs())
def test_load_dump_load_round_trips(data):
    spec = Spec.model_validate(data)
    text = spec.dump_yaml()
    loaded = load_spec_text(text)
    assert not loaded.problems
    assert loaded.spec == spec
    assert loaded.spec.hash() == spec.hash()
    assert loaded.spec.dump_yaml() == text


def test_the_hash_ignores_formatting_but_not_content():
    a = load_spec_text("source: {path: d.parquet}\nsteps: [{step: filter, params: {where: 'true'}}]\n").spec
    b = load_spec_text("# comment\nsource:\n  path: d.parquet\nsteps:\n  - step: filter\n    params:\n"
                       "      where: 'true'\n").spec
    c = load_spec_text("source: {path: d.parquet}\nsteps: [{step: filter, params: {where: 'false'}}]\n").spec
    assert a.hash() == b.hash() != c.hash()


class ClipScore(Step):
    """A stand-in for a model step whose extra is not installed."""

    name = "clip_score"
    requires = ("curate_test_no_such_module",)
    extra = "clip"


class ClipPlugin:
    @hookimpl
    def curate_register_steps(self):
        return [ClipScore]


FIVE_MISTAKES = """\
name: five_mistakes
source:
  path: data.parquet
steps:
  - step: filtr
    params: {where: "score > 0.2"}
  - step: sample
    params: {fraction: 28}
  - step: normalize_text
    params: {colums: [alt_text]}
  - step: exact_dedup
    params: {columns: [alt_txt]}
  - step: clip_scor
outputs:
  - format: parquet
    path: out.parquet
    step: dedupe
run:
  shard_sise: 10
"""


def test_every_mistake_is_reported_at_once_with_path_line_and_suggestion(pm, register_plugin, write_spec):
    register_plugin(ClipPlugin(), "clip")
    spec = write_spec(FIVE_MISTAKES, table=sample_table())
    with pytest.raises(SpecError) as caught:
        make_plan(load_spec(spec), pm)
    problems = {(p.path, p.line): (p.message, p.hint) for p in caught.value.problems}
    assert problems == {
        ("steps[0].step", 5): ("unknown step 'filtr'", "did you mean 'filter'?"),
        ("steps[1].params.fraction", 8): ("must be ≤ 1, got 28", None),
        ("steps[2].params.colums", 10): ("unknown key", "did you mean 'columns'?"),
        ("steps[3].step", 11): ("step 'exact_dedup' reads column 'alt_txt', which no upstream step produces",
                                "did you mean 'alt_text'?"),
        ("steps[4].step", 13): ("unknown step 'clip_scor'", "did you mean 'clip_score'?"),
        ("outputs[0].step", 17): ("no step labelled 'dedupe'",
                                  "labels: filtr, sample, normalize_text, exact_dedup, clip_scor"),
        ("run.shard_sise", 19): ("unknown key", "did you mean 'shard_size'?"),
    }
    text = str(caught.value)
    assert text.startswith(f"7 problems in {spec}:")
    assert f"{spec}:8: steps[1].params.fraction: must be ≤ 1, got 28" in text
    lines = [int(m) for m in re.findall(r"\.yaml:(\d+):", text)]
    assert lines == sorted(lines)  # in the order of the file


def test_a_step_whose_extra_is_missing_names_the_exact_install_line(pm, register_plugin, write_spec):
    register_plugin(ClipPlugin(), "clip")
    spec = write_spec({"source": {"path": "data.parquet"}, "steps": [{"step": "clip_score"}]}, table=sample_table())
    with pytest.raises(SpecError) as caught:
        make_plan(load_spec(spec), pm)
    (problem,) = caught.value.problems
    assert problem.path == "steps[0].step"
    assert problem.message == "step 'clip_score' needs curate_test_no_such_module, not installed"
    assert problem.hint == "run: pip install 'curate[clip]'"


@pytest.mark.parametrize("text, line, fragment", [
    ("source:\n  path: x\nsteps:\n  - step: filter\n   params: {a: 1}\n", 5, "not valid YAML"),
    ("source: {path: x\n", 2, "not valid YAML"),
    ("source:\n\tpath: x\n", 2, "not valid YAML"),
])
def test_bad_yaml_names_the_line(text, line, fragment):
    with pytest.raises(SpecError) as caught:
        load_spec_text(text)
    (problem,) = caught.value.problems
    assert problem.line == line and fragment in problem.message


def test_an_experiment_file_is_named_as_one_not_as_a_list_of_unknown_keys(tmp_path):
    path = tmp_path / "blend.yaml"
    path.write_text("name: blend\nworld: {n: 100}\nepochs: 2\nvariants:\n  - {name: a, strategy: x}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    (problem,) = caught.value.problems
    assert problem.line == 4 and "experiment" in problem.message
    assert problem.hint == f"run it with 'curate experiment run {path}'; 'curate experiment validate {path}' checks it"


YAMLISH = st.text(alphabet=st.sampled_from(list("ab1.-: \n\t[]{},#'\"&*!|>%@`\x00\x07é")), max_size=40)


@given(YAMLISH)
def test_one_parse_gives_what_safe_load_gives(text):
    # parse_yaml builds the data from the node it composes (one parse, where it parsed twice).
    import yaml

    from curate.spec import parse_yaml

    try:
        expected = yaml.safe_load(text)
    except yaml.YAMLError:
        with pytest.raises(SpecError, match="not valid YAML"):
            parse_yaml(text)
        return
    try:
        data, _ = parse_yaml(text)
    except SpecError as exc:  # keys given twice: safe_load keeps the last one silently
        assert all("is given twice" in p.message for p in exc.problems)
        return
    assert data == expected or (data != data and expected != expected)  # NaN is not itself


@pytest.mark.parametrize("text, fragment", [
    ("", "a spec is a YAML mapping"),
    ("- just\n- a list\n", "a spec is a YAML mapping"),
    ("steps: []\n", "source: required, but missing"),
])
def test_specs_that_are_not_specs(pm, text, fragment):
    with pytest.raises(SpecError, match=re.escape(fragment)):
        make_plan(load_spec_text(text), pm)


def test_a_param_without_default_left_out_says_to_set_it_not_that_the_plugin_is_broken(pm):
    """exact_dedup without columns said "its default in ExactDedup.Params is not valid, a bug in the
    plugin": columns has no default, the spec must set it."""
    text = "source: {path: x.parquet}\nsteps:\n  - step: exact_dedup\n"
    with pytest.raises(SpecError) as failed:
        make_plan(load_spec_text(text), pm)
    (problem,) = [p for p in failed.value.problems if "columns" in str(p.path)]
    assert problem.message == "required, but missing"
    assert problem.hint == ("ExactDedup has no default for 'columns' (the key: rows equal on all of these are "
                            "duplicates): set it in the step's params")


def test_duplicate_labels_are_reported_with_the_fix(pm):
    text = textwrap.dedent("""\
        source: {path: x.parquet}
        steps:
          - step: filter
            params: {where: 'true'}
          - step: filter
            params: {where: 'false'}
    """)
    with pytest.raises(SpecError, match="both labelled 'filter'.*distinct 'name:'"):
        make_plan(load_spec_text(text), pm)


@pytest.mark.parametrize("other_problem", [False, True])
def test_each_duplicate_label_is_reported_at_its_own_step_naming_the_first(pm, other_problem):
    # It was one problem at the `steps:` line (or at line 1), naming no line of either step.
    text = textwrap.dedent("""\
        source: {path: x.parquet}
        steps:
          - step: filter
            params: {where: 'true'}
          - step: sample
            params: {fraction: 0.5}
          - step: filter
            params: {where: 'false'}
          - name: sample
            step: exact_dedup
        run: {shard_size: 10}
    """)
    if other_problem:  # a spec that fails elsewhere too is loaded leniently: the same problems, and that one
        text = text.replace("shard_size", "shard_sise")
    problems = load_spec_text(text).problems
    duplicates = [(p.path, p.line, p.message, p.hint) for p in problems if "labelled" in p.message]
    fix = "give one of them a distinct 'name:'"
    assert duplicates == [("steps[2]", 7, "steps[2] and steps[0] (line 3) are both labelled 'filter'", fix),
                          ("steps[3]", 9, "steps[3] and steps[1] (line 5) are both labelled 'sample'", fix)]
    assert len(problems) == 2 + other_problem
    with pytest.raises(SpecError) as caught:
        make_plan(load_spec_text(text), pm)
    assert "spec:7: steps[2]: steps[2] and steps[0] (line 3) are both labelled 'filter'" in str(caught.value)


def test_a_spec_made_from_data_still_refuses_duplicate_labels():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="steps\\[1\\] and steps\\[0\\] are both labelled 'a': give one"):
        Spec.model_validate({"source": {}, "steps": [{"step": "a"}, {"step": "a"}]})


def test_a_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "nope.yaml")


def test_spec_errors_survive_pickling():
    with pytest.raises(SpecError) as caught:
        load_spec_text("source: {path: x\n")
    again = pickle.loads(pickle.dumps(caught.value))
    assert str(again) == str(caught.value)
    assert again.problems == caught.value.problems


def _expanded(value) -> int:
    """Values a YAML document stands for, counted as curate.yaml_limits counts nodes: a mapping is
    one, plus its keys and values; a list one plus its items."""
    if isinstance(value, dict):
        return 1 + sum(_expanded(k) + _expanded(v) for k, v in value.items())
    if isinstance(value, list):
        return 1 + sum(_expanded(item) for item in value)
    return 1


SHARED_DAGS = st.recursive(
    st.one_of(st.integers(-5, 5), st.text("ab", max_size=2)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text("xyz", min_size=1, max_size=2), inner, max_size=3),
        # the same object twice: yaml.safe_dump writes it once, with an anchor, and aliases it
        inner.map(lambda shared: [shared, shared]),
        inner.map(lambda shared: {"p": shared, "q": [shared, shared]}),
    ),
    max_leaves=40,
)


@given(SHARED_DAGS, st.integers(1, 400))
def test_aliases_are_counted_expanded_and_bounded(value, limit):
    import yaml

    from curate.yaml_limits import YamlTooLarge, check_node

    text = yaml.safe_dump({"v": value})
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    size = _expanded({"v": value})
    if size <= limit:
        assert check_node(node, limit) == size
    else:
        with pytest.raises(YamlTooLarge, match=f"more than {limit:,} values"):
            check_node(node, limit)


def test_a_spec_over_the_size_bound_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    """Pure-Python YAML took 58 s to refuse an 11.7 MB spec: the bytes are bounded first."""
    from curate import spec as spec_module
    from curate.spec import load_spec, load_spec_text

    big = tmp_path / "big.yaml"
    steps = "".join(f"  - step: filter\n    name: f{i}\n    params: {{where: 'true'}}\n" for i in range(25_000))
    big.write_text("name: big\nsource: {path: data.parquet}\nsteps:\n" + steps)
    assert big.stat().st_size > spec_module.MAX_SPEC_BYTES
    monkeypatch.setattr(spec_module.yaml, "SafeLoader", None)  # parsing it would fail differently
    with pytest.raises(SpecError, match="the spec file is .* bytes; a spec is at most 1,048,576"):
        load_spec(big)
    with pytest.raises(SpecError, match="a spec is at most 1,048,576"):
        load_spec_text(big.read_text())
