"""``curate validate --json``: ok, every problem located, the warnings; exit codes as without it
(automation probe F12b)."""

from __future__ import annotations

import json

import polars as pl

from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)

TABLE = pl.DataFrame({"url": ["u1", "u2"], "alt_text": ["a cat", "a dog"]})
SPEC = {"name": "s", "source": {"path": "data.parquet"},
        "steps": [{"step": "filter", "params": {"where": "true"}}], "run": {"dir": "run", "report": False}}


def test_problems_come_located_with_exit_2(curate_main, write_spec):
    steps = [{"step": "filtr"}, {"step": "sample", "params": {"fraction": 28}}]
    write_spec({**SPEC, "steps": steps}, table=TABLE)
    result = curate_main("validate", "spec.yaml", "--json")
    assert result.code == 2
    shown = json.loads(result.stdout)
    assert shown["ok"] is False and shown["warnings"] == []
    by_where = {error["where"]: error for error in shown["errors"]}
    assert set(by_where) == {"steps[0].step", "steps[1].params.fraction"}, shown
    assert by_where["steps[0].step"]["message"] == "unknown step 'filtr'"
    assert by_where["steps[0].step"]["hint"] == "did you mean 'filter'?"
    assert by_where["steps[0].step"]["line"] == 5 and by_where["steps[0].step"]["file"] == "spec.yaml"


def test_a_valid_spec_is_ok_and_says_what_would_stop_a_run(curate_main, write_spec, workdir):
    from curate.lock import locked

    write_spec(SPEC, table=TABLE)
    result = curate_main("validate", "spec.yaml", "--json")
    assert result.code == 0 and json.loads(result.stdout) == {
        "ok": True, "exit_code": 0, "spec": str(workdir / "spec.yaml"), "run_dir": str(workdir / "run"),
        "errors": [], "warnings": []}
    (workdir / "run").mkdir()
    with locked([(workdir / "run", "run directory")]):  # another run holds it
        result = curate_main("validate", "spec.yaml", "--json")
    [warning] = json.loads(result.stdout)["warnings"]
    assert result.code == 0 and "in use by another curate run" in warning and warning in result.stderr
