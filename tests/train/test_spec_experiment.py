"""Experiments over any spec (curate_train/spec_experiment.py): validation that names the variant,
the path and the closest name without running anything, and a tiny end-to-end run whose variants
share cached steps and pair their seeds."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import polars as pl
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from tests.train.test_evalsets import RGB, cli

COLORS = ["red", "green", "blue", "magenta"]


def make_pool(root: Path, rows: int = 16) -> None:
    """A user's pool of coloured squares (alt-texts name the colour) and a labelled eval table."""
    images = root / "images"
    images.mkdir(parents=True)
    pool = []
    for n in range(rows):
        color = COLORS[n % len(COLORS)]
        Image.new("RGB", (16, 16), RGB[color]).save(images / f"{n:03d}.png")
        pool.append({"url": f"https://example.org/{n}.png", "alt_text": f"a {color} square",
                     "image": {"shard": str(images.resolve()), "key": f"{n:03d}"}})
    pl.DataFrame(pool).write_parquet(root / "pool.parquet")
    (root / "eval").mkdir()
    for n, color in enumerate(COLORS):
        Image.new("RGB", (16, 16), RGB[color]).save(root / "eval" / f"{n}.png")
    pl.DataFrame({"path": [f"eval/{n}.png" for n in range(4)], "label": COLORS}).write_parquet(root / "eval.parquet")
    (root / "base.yaml").write_text(yaml.safe_dump({
        "name": "pool", "source": {"format": "parquet", "path": "pool.parquet"},
        "steps": [{"step": "normalize_text"}, {"step": "exact_dedup", "name": "dedup", "params": {"columns": ["url"]}}],
    }, sort_keys=False))


def experiment(root: Path, **changes) -> Path:
    data = {
        "name": "tiny", "spec": "base.yaml", "seeds": [0, 1],
        "train": {"model": "tiny", "samples": 48, "batch_size": 16, "warmup": 1, "lr": 0.001},
        "eval": [{"name": "colors", "format": "table", "path": "eval.parquet", "templates": ["a {} square"]}],
        "variants": [
            {"name": "all"},
            # the same rows through one more step: shares the base's steps, trains on identical data
            {"name": "all_sampled", "insert": [{"after": "dedup", "steps": [{"step": "sample",
                                                                              "params": {"fraction": 1.0}}]}]},
        ],
        **changes,
    }
    path = root / "experiment.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def pool(tmp_path) -> Path:
    make_pool(tmp_path)
    return tmp_path


def test_validate_lists_each_variants_plan_and_runs_nothing(pool, capsys):
    code, out, err = cli(["experiment", "validate", experiment(pool), "--run-dir", pool / "run"], capsys)
    assert code == 0, err
    assert "ok all: source → normalize_text → dedup" in out
    assert "ok all_sampled: source → normalize_text → dedup → sample" in out
    assert not (pool / "run").exists()


@pytest.mark.parametrize("variant, expected", [
    ({"name": "bad", "set": {"steps.dedupe.params.columns": ["alt_text"]}},
     ["variants.bad.set.steps.dedupe.params.columns", "no step labelled 'dedupe'", "did you mean 'dedup'?"]),
    ({"name": "bad", "sett": {}}, ["variants.bad.sett: unknown key", "did you mean 'set'?"]),
    ({"name": "bad", "remove": ["normalise_text"]}, ["variants.bad.remove", "did you mean 'normalize_text'?"]),
    ({"name": "bad", "insert": [{"after": "dedup", "steps": [{"step": "clip_score",
                                                             "params": {"model": "{model:al}"}}]}]},
     ["'{model:al}' names no variant", "did you mean 'all'?"]),
    ({"name": "bad", "set": {"steps.dedup.params.columns": ["{model:bad}"]}},
     ["'{model:bad}' is the variant's own model"]),
    ({"name": "bad", "insert": [{"after": "dedup", "steps": [{"step": "sample", "params": {"count": "{rows:al}"}}]}]},
     ["'{rows:al}' names no variant", "did you mean 'all'?"]),  # the placeholder written, not {model:al}
    ({"name": "bad", "insert": [{"after": "dedup", "steps": [{"step": "sample", "params": {"count": "{rows:bad}"}}]}]},
     ["'{rows:bad}' is the variant's own rows"]),
    ({"name": "bad", "set": {"steps.dedup.params.colums": ["url"]}},
     ["variants.bad: steps[1].params.colums", "unknown key"]),
    ({"name": "bad", "insert": [{"before": "dedup", "steps": [{"step": "sampel", "params": {"count": 2}}]}]},
     ["variants.bad: steps[1].step", "sampel", "sample"]),
])
def test_a_bad_variant_is_one_clear_error_naming_variant_path_and_closest(pool, capsys, variant, expected):
    path = experiment(pool, variants=[{"name": "all"}, variant])
    for command in ("validate", "run"):
        code, out, err = cli(["experiment", command, path, "--run-dir", pool / "run"], capsys)
        assert code == 2, (out, err)
        assert "Traceback" not in err
        for text in expected:
            assert text in err, (text, err)
    assert not (pool / "run").exists()  # nothing ran


def line_with(path: Path, text: str) -> int:
    """The 1-based line of ``path`` that holds ``text`` (once)."""
    lines = [n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    assert len(lines) == 1, (text, lines)
    return lines[0]


@pytest.mark.parametrize("variant, written, expected", [
    ({"name": "bad", "set": {"steps.dedupe.params.columns": ["alt_text"]}}, "steps.dedupe.params.columns:",
     "variants.bad.set.steps.dedupe.params.columns: no step labelled 'dedupe'"),
    ({"name": "bad", "remove": ["normalise_text"]}, "- normalise_text",
     "variants.bad.remove: normalise_text: no step labelled 'normalise_text'"),
    ({"name": "bad", "insert": [{"after": "dedupe", "steps": [{"step": "sample"}]}]}, "after: dedupe",
     "variants.bad.insert[0].after: dedupe: no step labelled 'dedupe'"),
    ({"name": "bad", "insert": [{"after": "dedup", "steps": [{"step": "clip_score",
                                                             "params": {"model": "{model:al}"}}]}]},
     "{model:al}", "variants.bad: '{model:al}' names no variant"),
    # problems of the variant's plan: at the key it set, or at the step it inserted
    ({"name": "bad", "set": {"steps.dedup.params.colums": ["url"]}}, "steps.dedup.params.colums:",
     "variants.bad: steps[1].params.colums: unknown key"),
    ({"name": "bad", "insert": [{"before": "dedup", "steps": [{"step": "sampel", "params": {"count": 2}}]}]},
     "step: sampel", "variants.bad: steps[1].step: unknown step 'sampel'"),
    ({"name": "bad", "insert": [{"before": "dedup", "steps": [{"step": "sample", "params": {"fractoin": 0.5}}]}]},
     "fractoin:", "variants.bad: steps[1].params.fractoin: unknown key"),
    ({"name": "bad", "insert": [{"steps": [{"step": "normalize_text"}]}]}, "step: normalize_text",
     "variants.bad: steps[2]: steps[2] and steps[0] are both labelled 'normalize_text'"),
])
def test_validate_names_the_line_each_problem_was_written_on(pool, capsys, variant, written, expected):
    path = experiment(pool, variants=[{"name": "all"}, variant])
    code, _, err = cli(["experiment", "validate", path, "--run-dir", pool / "run"], capsys)
    assert code == 2, err
    assert f"{path}:{line_with(path, written)}: {expected}" in err, err


def test_validate_names_lines_of_the_experiments_own_fields(pool, capsys):
    path = experiment(pool, train={"model": "tiny", "samples": 48, "precision": "fp64", "step": "dedupp"},
                      eval=[{"name": "colors", "format": "table", "path": "nope.parquet"}])
    code, _, err = cli(["experiment", "validate", path, "--run-dir", pool / "run"], capsys)
    assert code == 2, err
    for written, expected in [("precision: fp64", "train.precision: 'fp64' is not one open_clip_train accepts"),
                              ("step: dedupp", "train.step: variant 'all' has no step labelled 'dedupp'"),
                              ("path: nope.parquet", "eval[0].path: ")]:
        assert f"{path}:{line_with(path, written)}: {expected}" in err, (expected, err)
    lines = [int(n) for n in re.findall(r"experiment\.yaml:(\d+):", err)]
    assert lines == sorted(lines)  # in the order of the file


def test_a_problem_of_the_base_spec_is_named_at_its_line_in_its_own_file(pool, capsys):
    base = pool / "base.yaml"
    base.write_text(base.read_text().replace("columns:", "colums:"))
    code, _, err = cli(["experiment", "validate", experiment(pool), "--run-dir", pool / "run"], capsys)
    assert code == 2, err
    for name in ("all", "all_sampled"):
        assert f"base.yaml:{line_with(base, 'colums:')}: variants.{name}: steps[1].params.colums: unknown key" in err
    # given inline, the base spec is in the experiment file
    inline = yaml.safe_load(base.read_text())
    path = experiment(pool, spec=inline)
    code, _, err = cli(["experiment", "validate", path, "--run-dir", pool / "run"], capsys)
    assert code == 2, err
    assert f"{path}:{line_with(path, 'colums:')}: variants.all: steps[1].params.colums: unknown key" in err, err


def test_bad_experiment_fields_are_errors_with_lines(pool, capsys):
    path = experiment(pool, train={"model": "tiny", "samples": 0}, variants=[{"name": "a"}, {"name": "a"}])
    code, _, err = cli(["experiment", "validate", path], capsys)
    assert code == 2 and "Traceback" not in err
    assert "train.samples: must be > 0, got 0" in err and "two variants are named 'a'" in err
    code, _, err = cli(["experiment", "validate", experiment(pool, spec="nope.yaml")], capsys)
    assert code == 2 and "nope.yaml does not exist" in err


@pytest.mark.parametrize("name", ["/tmp/elsewhere", "../../outside", "a/b"])
def test_an_experiment_name_that_would_put_its_run_folder_elsewhere_is_refused(pool, capsys, name):
    """The default run directory is runs/<name> beside the spec's folder: '/x' or '..' left it."""
    path = experiment(pool, name=name)
    code, _, err = cli(["experiment", "validate", path], capsys)
    assert code == 2, err
    assert f"{path}:1: name: an experiment's name becomes its run folder" in err and repr(name) in err


def test_training_settings_beyond_their_bounds_are_refused_naming_key_and_bound(pool, capsys):
    path = experiment(pool, train={"model": "tiny", "samples": 10**12, "batch_size": 10**9, "lr": float("nan"),
                                   "threads": 10**5})
    code, _, err = cli(["experiment", "validate", path], capsys)
    assert code == 2, err
    for expected in ("train.samples: must be ≤ 1000000000, got 1000000000000",
                     "train.batch_size: must be ≤ 65536, got 1000000000",
                     "train.lr: Input should be a finite number", "train.threads: must be ≤ 1024, got 100000"):
        assert expected in err, (expected, err)


def test_a_budget_that_needs_more_copies_than_the_export_writes_is_a_clear_error_before_training(pool, capsys):
    """16 rows and 16,016 samples: 1,001 copies of each row, one more than the export's limit."""
    path = experiment(pool, seeds=[0], variants=[{"name": "all"}],
                      train={"model": "tiny", "samples": 16 * 1001, "batch_size": 16})
    code, _, err = cli(["experiment", "run", path, "--run-dir", pool / "run"], capsys)
    assert code != 0 and "internal error" not in err, err
    assert "step 'dedup' kept 16 rows" in err and "each row 1001 times" in err and "limit of 1000" in err
    assert not (pool / "run" / "seed-0" / "all" / "shards").exists()
    assert not (pool / "run" / "seed-0" / "all" / "train").exists()


@pytest.mark.parametrize("command", ["validate", "run"])
def test_an_experiment_file_that_is_a_fifo_is_refused_not_waited_on(tmp_path, curate_cli, command):
    os.mkfifo(tmp_path / "experiment.yaml")
    result = curate_cli("experiment", command, str(tmp_path / "experiment.yaml"), timeout=60)
    assert result.code == 2 and "not a file" in result.stderr, result


def test_an_eval_table_that_is_a_fifo_is_refused_at_validate_not_waited_on(pool, curate_cli):
    os.mkfifo(pool / "pipe.csv")
    path = experiment(pool, eval=[{"name": "colors", "format": "table", "path": "pipe.csv", "groups": {"warm": ["red"]}}])
    result = curate_cli("experiment", "validate", str(path), "--run-dir", str(pool / "run"), timeout=60)
    assert result.code == 2, result
    assert "eval[0]: eval set 'colors': " in result.stderr and "pipe.csv is a pipe (FIFO), not a table file" in result.stderr


def test_validate_refuses_a_training_model_whose_tokenizer_would_run_code(pool, capsys):
    from tests.clip.test_model_files import malicious_folder

    folder = malicious_folder(pool / "evil", None, pool / "ran")
    path = experiment(pool, train={"model": f"local-dir:{folder}", "samples": 48})
    code, _, err = cli(["experiment", "validate", path, "--run-dir", pool / "run"], capsys)
    assert code == 2, err
    assert f"{path}:{line_with(path, 'model: local-dir:')}: train.model: " in err and "trust_remote_code" in err
    assert "internal error" not in err and not (pool / "ran").exists()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")  # open_clip_train and webdataset warn about CPU runs and leaked handles
def test_two_variants_two_seeds_share_cached_steps_and_pair_their_seeds(pool, capsys):
    run_dir = pool / "run"
    code, out, err = cli(["experiment", "run", experiment(pool), "--run-dir", run_dir], capsys)
    assert code == 0, err[-3000:]
    results = {(seed, name): json.loads((run_dir / f"seed-{seed}" / name / "result.json").read_text())
               for seed in (0, 1) for name in ("all", "all_sampled")}
    cached = {key: {s["label"]: s["cached"] for s in r["steps"]} for key, r in results.items()}
    # shared steps run once: the first variant of the first seed computes them, everyone else reuses them
    assert cached[0, "all"] == {"source": False, "normalize_text": False, "dedup": False}
    assert cached[0, "all_sampled"] == {"source": True, "normalize_text": True, "dedup": True, "sample": False}
    assert cached[1, "all"] == {"source": True, "normalize_text": True, "dedup": True}
    assert cached[1, "all_sampled"]["sample"] is False  # a random step's fingerprint holds the seed
    fingerprints = {key: {s["label"]: s["fingerprint"] for s in r["steps"]} for key, r in results.items()}
    assert fingerprints[0, "all"]["dedup"] == fingerprints[1, "all_sampled"]["dedup"]
    assert fingerprints[0, "all_sampled"]["sample"] != fingerprints[1, "all_sampled"]["sample"]
    # equal budgets, paired seeds: same rows in the same seed → the same training, the same model
    for seed in (0, 1):
        a, b = results[seed, "all"], results[seed, "all_sampled"]
        assert a["samples_seen"] == b["samples_seen"] == 48 and a["rows"] == b["rows"] == 16
        assert a["train_seed"] == b["train_seed"] == seed
        assert a["colors.acc1"] == b["colors.acc1"]
        weights = [Path(r["model"]) / "open_clip_model.safetensors" for r in (a, b)]
        assert weights[0].read_bytes() == weights[1].read_bytes()
    assert (Path(results[0, "all"]["model"]) / "open_clip_model.safetensors").read_bytes() != \
        (Path(results[1, "all"]["model"]) / "open_clip_model.safetensors").read_bytes()
    summary = json.loads((run_dir / "experiment" / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and [v["variant"] for v in summary["variants"]] == ["all", "all_sampled"]
    gap = next(g for g in summary["gaps"] if g["metric"] == "colors.acc1")
    assert gap["by_seed"] == [0.0, 0.0] and gap["exceeds_spread"] is False
    assert "| all | all_sampled | colors.acc1 |" in (run_dir / "experiment" / "summary.md").read_text()
    # a second run reuses every finished variant
    code, out, err = cli(["experiment", "run", experiment(pool), "--run-dir", run_dir], capsys)
    assert code == 0 and out.count("finished earlier") == 4
    # a result.json that is not as the experiment wrote it (from elsewhere) is run again, not believed
    (run_dir / "seed-1" / "all" / "result.json").write_text(json.dumps([results[1, "all"]]))
    code, out, err = cli(["experiment", "run", experiment(pool), "--run-dir", run_dir], capsys)
    assert code == 0 and out.count("finished earlier") == 3, err[-3000:]
    assert "result.json is damaged: it is an array, not an object; running it again" in out
    assert json.loads((run_dir / "seed-1" / "all" / "result.json").read_text())["rows"] == 16


def test_the_digits_experiment_validates_on_the_pool_its_script_makes(tmp_path, capsys):
    pytest.importorskip("sklearn")
    import shutil
    import sys

    repo = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(repo / "benchmarks"))
    try:
        from digits_pool import make
    finally:
        sys.path.remove(str(repo / "benchmarks"))
    facts = make(tmp_path / "runs" / "digits-data")
    assert facts["pool_rows"] == 1050 and facts["distinct"] == 1000 and facts["eval"] == 797
    assert facts["clean"] + facts["wrong"] + facts["junk"] == 1000 and facts["wrong"] > 300
    (tmp_path / "specs").mkdir()
    for name in ("experiment_digits.yaml", "digits_pool.yaml"):
        shutil.copy(repo / "specs" / name, tmp_path / "specs" / name)
    code, out, err = cli(["experiment", "validate", tmp_path / "specs" / "experiment_digits.yaml"], capsys)
    assert code == 0, err
    assert "ok clip_top60: source → normalize_text → dedup → clip_score → clip_filter" in out
    assert out.index("ok no_filter") < out.index("ok clip_top60")  # the scorer's model is trained first
    assert not (tmp_path / "runs" / "digits").exists()


def test_a_paired_gap_exceeds_the_spread_only_when_its_t_interval_excludes_zero():
    from curate_train.gaps import markdown, paired, summarize

    consistent = paired([2.0, 3.0, 4.0])  # mean 3, sd 1: ± 4.303 / √3 = ± 2.48
    assert consistent["mean"] == 3.0 and consistent["ci95"] == 2.48 and consistent["exceeds_spread"]
    assert (consistent["wins"], consistent["losses"]) == (3, 0)
    noisy = paired([1.0, -1.0, 3.0])  # mean 1, sd 2: ± 4.97
    assert not noisy["exceeds_spread"] and (noisy["wins"], noisy["losses"]) == (2, 1)
    assert not paired([5.0])["exceeds_spread"]  # one seed says nothing about the spread
    results = {seed: {"a": {"x.acc1": 50.0 + seed, "rows": 10, "steps": []},
                      "b": {"x.acc1": 40.0 + 2 * seed, "rows": 6, "steps": []}} for seed in (0, 1, 2)}
    summary = summarize("s", results, ["a", "b"])
    assert summary["variants"][0]["x.acc1"] == 51.0 and summary["variants"][0]["x.acc1_std"] == 1.0
    [gap] = summary["gaps"]  # rows are reported per variant, not as a gap
    assert gap["by_seed"] == [10.0, 9.0, 8.0] and gap["exceeds_spread"]
    assert "| a | b | x.acc1 | **+9.00 ± 2.48** | 3/0 |" in markdown(summary)


def test_seed_and_rows_references_validate_and_a_bad_group_is_refused(pool, capsys):
    import shutil

    for seed in (3, 4):  # one pool per seed, named by it
        shutil.copy(pool / "pool.parquet", pool / f"pool-{seed}.parquet")
    base = yaml.safe_load((pool / "base.yaml").read_text())
    base["source"]["path"] = "pool-{seed}.parquet"
    (pool / "base.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    variants = [{"name": "half", "insert": [{"steps": [{"step": "sample", "params": {"fraction": 0.5}}]}]},
                {"name": "same_size", "insert": [{"steps": [{"step": "sample", "params": {"count": "{rows:half}"}}]}]}]
    groups = {"head": ["red", "green"], "tail": ["blue", "magenta"]}
    evals = [{"name": "colors", "format": "table", "path": "eval.parquet", "templates": ["a {} square"],
              "groups": groups}]
    path = experiment(pool, seeds=[3, 4], variants=variants, eval=evals)
    code, out, err = cli(["experiment", "validate", path, "--run-dir", pool / "run"], capsys)
    assert code == 0, err
    assert out.index("ok half") < out.index("ok same_size")  # the variant whose rows are used runs first
    (pool / "pool-3.parquet").unlink()
    code, _, err = cli(["experiment", "validate", path, "--run-dir", pool / "run"], capsys)
    assert code == 2 and "pool-3.parquet" in err and "Traceback" not in err  # seeds[0] = 3 is planned
    shutil.copy(pool / "pool.parquet", pool / "pool-3.parquet")
    evals[0]["groups"] = {"tail": ["blu"]}
    code, _, err = cli(["experiment", "validate", experiment(pool, seeds=[3], variants=variants, eval=evals),
                        "--run-dir", pool / "run"], capsys)
    assert code == 2 and "group 'tail' names 'blu'" in err and "did you mean 'blue'" in err


names = st.text(alphabet="abcdefgh_", min_size=1, max_size=6)
plain = st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=12)


@given(name=names, rows=st.integers(0, 10**9), before=plain, after=plain, seed=st.integers(0, 10**6))
def test_rows_and_seed_references_are_replaced_exactly(name, rows, before, after, seed):
    from curate_train.spec_experiment import placeholders, references, substitute, with_seed

    data = {"count": "{rows:" + name + "}", "note": before + "{rows:" + name + "}" + after,
            "model": "{model:" + name + "}", "path": [before + "{seed}" + after], "other": before, "n": 3}
    assert references(data) == {name}
    assert placeholders(data) == {("rows", name), ("model", name)}  # what an error quotes back
    out = substitute(data, {name: "local-dir:/m"}, {name: rows})
    # the whole value becomes the number itself; inside a longer string, its digits
    assert out["count"] == rows and isinstance(out["count"], int)
    whole = not (before + after).strip()
    assert out["note"] == (rows if whole else before + str(rows) + after) and out["model"] == "local-dir:/m"
    assert out["path"] == data["path"] and out["other"] == before and out["n"] == 3
    seeded = with_seed(data, seed)
    assert seeded["path"] == [before + str(seed) + after]
    assert {k: v for k, v in seeded.items() if k != "path"} == {k: v for k, v in data.items() if k != "path"}


def _bomb_lines() -> str:
    """Ten anchors, each ten aliases of the one before: 10**10 values in 300 bytes."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_in_an_experiment_or_eval_set_file_is_refused(tmp_path):
    from curate.errors import SpecError, UsageError
    from curate_train import experiment
    from curate_train.evalsets import load_eval_sets
    from curate_train.spec_experiment import is_spec_experiment
    from curate_train.spec_experiment import load as load_spec_experiment

    with_spec = tmp_path / "with_spec.yaml"
    with_spec.write_text("name: bomb\nspec: base.yaml\n" + _bomb_lines())
    world = tmp_path / "world.yaml"
    world.write_text("name: bomb\n" + _bomb_lines())
    assert not is_spec_experiment(with_spec)  # then the world experiment's loader says why
    for load, path in ((load_spec_experiment, with_spec), (experiment.load, world)):
        with pytest.raises(SpecError, match="more than 1,000,000 values"):
            load(path)
    evalset = tmp_path / "evalset.yaml"
    evalset.write_text("format: table\npath: t.parquet\n" + _bomb_lines())
    with pytest.raises(UsageError, match="more than 1,000,000 values"):
        load_eval_sets(evalset)


def test_a_variants_result_is_reused_only_as_the_experiment_wrote_it(tmp_path):
    """An experiment's folder may come from elsewhere: a result.json that is a pipe, a link, endless,
    of the wrong shape or naming a model outside the folder is run again, never waited on or
    believed (its model would be loaded by the variants after it)."""
    import os

    from curate_train.spec_experiment import saved_result

    run_dir = tmp_path / "run"
    folder = run_dir / "seed-0" / "all"
    (folder / "train").mkdir(parents=True)
    done = folder / "result.json"
    good = {"config": "c0ffee", "model": str(folder / "train"), "rows": 16, "samples_seen": 48,
            "steps": [{"label": "source", "cached": False}], "colors.acc1": 25.0}
    assert saved_result(done, run_dir) == (None, None)
    done.write_text(json.dumps(good))
    assert saved_result(done, run_dir) == (good, None)
    damaged = {
        "a list": [good], "rows as text": {**good, "rows": "16"}, "no config": {k: v for k, v in good.items()
                                                                               if k != "config"},
        "a step without its label": {**good, "steps": [{"cached": True}]},
        "a model elsewhere": {**good, "model": str(tmp_path / "their_model")},
    }
    for what, data in damaged.items():
        done.write_text(json.dumps(data))
        result, problem = saved_result(done, run_dir)
        assert result is None and problem is not None and problem.startswith("is damaged: "), what
    done.unlink()
    os.mkfifo(done)
    assert saved_result(done, run_dir)[1].startswith("cannot be read")  # opened without waiting for a writer
    done.unlink()
    done.symlink_to("/dev/zero")
    assert saved_result(done, run_dir) == (None, "is a symbolic link, not the file the experiment wrote")
