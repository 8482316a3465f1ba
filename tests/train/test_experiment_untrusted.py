"""An experiment over a spec from someone else (``curate experiment validate|run --untrusted``): its
variants' specs are planned untrusted (curate.untrusted) and its own places (the base spec, eval
sets) are checked, each refusal an exit-2 problem at its line; the same files validate without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.train.test_evalsets import cli
from tests.train.test_spec_experiment import experiment, make_pool


@pytest.fixture
def pool(tmp_path, monkeypatch) -> Path:
    """The user's working directory: a pool, an eval table and a base spec."""
    work = tmp_path / "work"
    make_pool(work)
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder of the user's outside the working directory, with a pool, eval table and base spec."""
    make_pool(tmp_path / "private")
    (tmp_path / "private" / "entries.txt").write_text("red\ngreen\n")
    return tmp_path / "private"


def validate(path: Path, capsys, *options: str) -> tuple[int, str, str]:
    return cli(["experiment", "validate", path, "--run-dir", "run", *options], capsys)


def refused_only_untrusted(path: Path, capsys, *expected: str) -> str:
    """``path`` validates as the user's own; with --untrusted it is refused, naming ``expected``."""
    code, _, err = validate(path, capsys)
    assert code == 0, err
    code, _, err = validate(path, capsys, "--untrusted")
    assert code == 2, err
    assert "Traceback" not in err
    for text in expected:
        assert text in err, err
    return err


def moved(path: Path, to: Path, **changes) -> Path:
    """The experiment file ``path`` written at ``to`` with ``changes`` to its fields."""
    data = {**yaml.safe_load(path.read_text()), **changes}
    to.parent.mkdir(parents=True, exist_ok=True)
    to.write_text(yaml.safe_dump(data, sort_keys=False))
    return to


def test_an_experiment_inside_the_working_directory_validates_untrusted(pool, capsys):
    code, out, err = validate(experiment(pool), capsys, "--untrusted")
    assert code == 0, err
    assert "ok all: source → normalize_text → dedup" in out
    assert not (pool / "run").exists()


def test_a_base_spec_outside_the_experiment_files_folder_by_dotdot_is_refused(pool, capsys):
    evals = [{"name": "colors", "format": "table", "path": str(pool / "eval.parquet")}]
    path = moved(experiment(pool), pool / "experiments" / "x.yaml", spec="../base.yaml", eval=evals)
    refused_only_untrusted(path, capsys, f"{path}:2: spec: '../base.yaml' leads to {pool.resolve() / 'base.yaml'}",
                                 "outside the experiment file's folder", "spec: base.yaml")


def test_a_base_spec_given_by_an_absolute_path_is_refused(pool, outside, capsys):
    path = experiment(pool, spec=str(outside / "base.yaml"))
    refused_only_untrusted(path, capsys, f"spec: '{outside / 'base.yaml'}' leads to", "outside the experiment file's folder")


def test_a_base_spec_that_is_a_link_out_of_the_folder_is_refused(pool, outside, capsys):
    (pool / "link.yaml").symlink_to(outside / "base.yaml")
    path = experiment(pool, spec="link.yaml")
    refused_only_untrusted(path, capsys, f"spec: 'link.yaml' leads to {outside.resolve() / 'base.yaml'}")


def test_an_eval_set_outside_the_working_directory_is_refused_naming_field_path_and_where(pool, outside, capsys):
    raw = os.path.relpath(outside / "eval.parquet", pool)  # ../private/eval.parquet
    evals = [{"name": "colors", "format": "table", "path": raw, "templates": ["a {} square"]}]
    path = experiment(pool, eval=evals)
    err = refused_only_untrusted(path, capsys, f"eval[0].path: '{raw}' leads to {outside.resolve() / 'eval.parquet'}",
                                 "inside the working directory", "copy what it names into the working directory")
    assert err.count("eval[0]") == 1  # not also looked at ("does not exist", its groups)


def test_an_eval_set_that_is_a_link_out_is_refused(pool, outside, capsys):
    (pool / "linked.parquet").symlink_to(outside / "eval.parquet")
    evals = [{"name": "colors", "format": "table", "path": "linked.parquet", "templates": ["a {} square"]}]
    refused_only_untrusted(experiment(pool, eval=evals), capsys, "eval[0].path: 'linked.parquet' leads to "
                           f"{outside.resolve() / 'eval.parquet'}")


@pytest.mark.parametrize("variant, expected", [
    ({"name": "theirs", "set": {"source.path": "{outside}/pool.parquet"}},
     "variants.theirs: source.path: '{outside}/pool.parquet' is outside the working directory"),
    ({"name": "theirs", "insert": [{"after": "dedup", "steps": [
        {"step": "metadata_match", "params": {"entries": "{outside}/entries.txt"}}]}]},
     "variants.theirs: steps[2].params.entries: '{outside}/entries.txt' is outside the working directory"),
])
def test_a_variant_that_sets_a_place_outside_is_refused(pool, outside, capsys, variant, expected):
    variant = yaml.safe_load(yaml.safe_dump(variant).replace("{outside}", str(outside)))
    path = experiment(pool, variants=[{"name": "all"}, variant])
    refused_only_untrusted(path, capsys, expected.replace("{outside}", str(outside)))


def test_a_storage_url_is_refused_unless_allowed(pool, capsys):
    url = "s3://their-bucket/out/table.parquet"
    variants = [{"name": "all"}, {"name": "theirs", "set": {"outputs": [{"format": "parquet", "path": url}]}}]
    path = experiment(pool, variants=variants)
    refused_only_untrusted(path, capsys, f"variants.theirs: outputs[0].path: '{url}' is in object storage",
                           "--allow-remote")
    code, _, err = validate(path, capsys, "--untrusted", "--allow-remote", "s3://their-bucket/out")
    assert code == 0, err
    code, _, err = validate(path, capsys, "--untrusted", "--allow-remote", "s3://their-bucket/other")
    assert code == 2 and "is in object storage" in err, err


def test_an_eval_set_in_object_storage_is_refused_unless_allowed(pool, capsys):
    evals = [{"name": "colors", "format": "table", "path": "s3://their-bucket/eval.parquet"}]
    path = experiment(pool, eval=evals)
    code, _, err = validate(path, capsys, "--untrusted")
    assert code == 2 and "eval[0].path: 's3://their-bucket/eval.parquet' is in object storage" in err, err
    code, _, err = validate(path, capsys, "--untrusted", "--allow-remote", "s3://their-bucket")
    assert "object storage" not in err, err  # allowed: what remains is the user's own problem (no such file here)


def test_a_training_model_folder_outside_is_refused(pool, outside, capsys):
    train = {"model": f"local-dir:{outside}", "samples": 48, "batch_size": 16}
    code, _, err = validate(experiment(pool, train=train), capsys, "--untrusted")
    assert code == 2, err
    assert f"train.model: 'local-dir:{outside}'" not in err  # the folder, as local_dir_files names it
    assert f"train.model: '{outside}' leads to" in err, err


def test_run_untrusted_refuses_before_it_curates_or_trains(pool, outside, capsys):
    path = experiment(pool, spec=str(outside / "base.yaml"))
    code, _, err = cli(["experiment", "run", path, "--run-dir", "run", "--untrusted"], capsys)
    assert code == 2, err
    assert "outside the experiment file's folder" in err
    assert not (pool / "run").exists()
    evals = [{"name": "colors", "format": "table", "path": os.path.relpath(outside / "eval.parquet", pool)}]
    code, _, err = cli(["experiment", "run", experiment(pool, eval=evals), "--run-dir", "run", "--untrusted"], capsys)
    assert code == 2 and "eval[0].path" in err, err
    assert not (pool / "run").exists()


def test_an_untrusted_experiment_with_its_run_directory_outside_is_refused(pool, outside, capsys):
    code, _, err = cli(["experiment", "validate", experiment(pool), "--run-dir", outside / "run", "--untrusted"],
                       capsys)
    assert code == 2 and "--run-dir: the run directory" in err and "outside the working directory" in err, err


def test_the_world_blend_experiment_refuses_untrusted(pool, capsys):
    (pool / "blend.yaml").write_text(yaml.safe_dump({"name": "blend", "world": {"seed": 0}}))
    for command in ("validate", "run"):
        code, _, err = cli(["experiment", command, pool / "blend.yaml", "--untrusted"], capsys)
        assert code == 2, err
        assert "--untrusted is only for experiments over a spec" in err, err
