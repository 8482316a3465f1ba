"""What curate says of a run directory that failed or lost a file: each message whole and with
the command that repairs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import sample_table

SPEC = {"name": "said", "source": {"path": "data.parquet"}, "steps": [{"step": "normalize_text"}],
        "run": {"dir": "run", "shard_size": 10}}


@pytest.fixture
def finished(curate_main, write_spec, workdir) -> Path:
    write_spec(SPEC, table=sample_table(20))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    return workdir / "run"


def test_inspect_shows_a_failed_runs_hint_on_a_line_of_its_own(curate_main, write_spec):
    write_spec({**SPEC, "run": {**SPEC["run"], "min_free_disk": "1000TB"}}, table=sample_table(20))
    assert curate_main("run", "spec.yaml", "--quiet").code == 1
    said = curate_main("inspect", "run")
    assert said.code == 0 and "\\x0a" not in said.stdout, said
    assert "\n    hint: free disk space" in said.stdout  # indented under the error it belongs to


def test_a_damaged_saved_spec_says_how_to_resume(curate_main, finished, workdir):
    (finished / "spec.yaml").write_text("name: [cut short by a full disk")
    result = curate_main("run", "--resume", "run", "--quiet")
    assert result.code == 2 and "Traceback" not in result.stderr, result
    assert "cannot resume run: its spec.yaml, the spec the run ran, cannot be used" in result.stderr
    assert "not valid YAML" in result.stderr
    assert f"hint: run the spec again into it (curate run {workdir / 'spec.yaml'} --run-dir run)" in result.stderr


def test_a_run_dir_that_lost_its_manifest_is_named_as_one_with_the_repair(curate_main, finished, workdir):
    (finished / "manifest.json").unlink()
    for command in (["inspect", "run"], ["run", "--resume", "run", "--quiet"]):
        result = curate_main(*command)
        assert result.code == 2 and "not a curate run directory" not in result.stderr, result
        assert "manifest.json is damaged: it is missing, though spec.yaml, store, steps of a run are there" \
            in result.stderr
        assert "curate run SPEC --run-dir run" in result.stderr
    assert curate_main("run", "spec.yaml", "--quiet").code == 0  # the repair: the spec again, steps reused
    assert curate_main("inspect", "run").code == 0
