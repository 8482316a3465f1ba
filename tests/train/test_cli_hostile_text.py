"""``curate train`` and ``curate experiment`` show the paths and spec text they were given with
control characters and bidi overrides as escapes (their errors go through curate's error
printing), and what they print on success quotes only names checked to be plain."""

from __future__ import annotations

from pathlib import Path

from tests.core.test_cli_hostile_text import assert_shown_not_run
from tests.train.test_evalsets import cli
from tests.train.test_spec_experiment import experiment, make_pool

NAME = "s\x1b[2J\r\u202e[bold]"  # a folder name: no '/', so no [link=...] in it
SHOWN = "s\\x1b[2J\\x0d\\u202e[bold]"
LINK_WITHOUT_DOTS = "[link=http://x]y[/link]"  # a dot would end the label in a `set:` path
LABEL = f"x\x1b[2J\r\u202e{LINK_WITHOUT_DOTS}"


def test_train_clip_names_shards_without_sizes_with_escapes(tmp_path: Path, capsys) -> None:
    (tmp_path / NAME).mkdir()
    code, out, err = cli(["train", "clip", tmp_path / NAME, "--out", tmp_path / "out"], capsys)
    assert code == 2 and out == "", err
    assert f"error: {tmp_path}/{SHOWN} has no sizes.json" in err
    assert_shown_not_run(err)


def test_train_eval_names_a_missing_eval_set_file_with_escapes(tmp_path: Path, capsys) -> None:
    code, _, err = cli(["train", "eval", "--eval-set", tmp_path / f"{NAME}.yaml"], capsys)
    assert code == 2, err
    assert f"{tmp_path}/{SHOWN}.yaml does not exist" in err
    assert_shown_not_run(err)


def test_experiment_validate_quotes_a_variants_step_label_with_escapes(tmp_path: Path, capsys) -> None:
    make_pool(tmp_path, rows=4)
    path = experiment(tmp_path, variants=[{"name": "all"},
                                          {"name": "bad", "set": {f"steps.{LABEL}.params.columns": ["url"]}}])
    code, out, err = cli(["experiment", "validate", path, "--run-dir", tmp_path / "run"], capsys)
    assert code == 2, (out, err)
    assert f"no step labelled 'x\\x1b[2J\\x0d\\u202e{LINK_WITHOUT_DOTS}'" in err
    assert_shown_not_run(out + err)
    assert not (tmp_path / "run").exists()
