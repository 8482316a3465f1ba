"""``curate run --json``: one JSON object on stdout, and nothing else there, however the run ends, so a
pipeline reads the outcome instead of scraping the rich table (automation probe F12a)."""

from __future__ import annotations

import json
import logging
import signal
import warnings

import polars as pl

from curate import Step, hookimpl
from curate.errors import Terminated
from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)

TABLE = pl.DataFrame({"url": [f"u{i}" for i in range(20)], "alt_text": [f"text {i}" for i in range(20)]})
SPEC = {"name": "s", "source": {"path": "data.parquet"},
        "steps": [{"step": "filter", "params": {"where": "length(alt_text) > 6"}}],
        "outputs": [{"format": "parquet", "path": "out.parquet"}],
        "run": {"dir": "run", "report": False}}


def answer(result) -> dict:
    """The JSON object, which must be all of stdout."""
    return json.loads(result.stdout)


def test_a_complete_run_answers_with_its_steps_and_outputs(curate_main, write_spec, workdir):
    write_spec(SPEC, table=TABLE)
    result = curate_main("run", "spec.yaml", "--json")
    assert result.code == 0, result.stderr
    shown = answer(result)
    assert shown["status"] == "complete" and shown["exit_code"] == 0 and "error" not in shown
    assert shown["run_dir"] == str(workdir / "run") and shown["spec"] == str(workdir / "spec.yaml")
    assert [(s["label"], s["plugin"], s["rows_in"], s["rows_out"], s["cached"]) for s in shown["steps"]] == [
        ("source", "basics", 20, 20, False), ("filter", "basics", 20, 10, False)]
    assert shown["steps"][1]["dropped"] == {"filter": 10} and shown["warnings"] == []
    [output] = shown["outputs"]
    assert output["rows"] == 10 and output["bytes"] == (workdir / "run" / "out.parquet").stat().st_size
    assert "rows in" not in result.stderr  # the table is the JSON's now
    # the names `curate inspect --json` uses, with its values
    inspected = curate_main("inspect", "run", "--json").json()
    for step, record in zip(shown["steps"], inspected["steps"], strict=True):
        assert {key: record.get(key) for key in step} == step
    again = answer(curate_main("run", "spec.yaml", "--json", "--quiet"))
    assert all(step["cached"] for step in again["steps"])


def test_a_failed_run_answers_with_the_error_it_printed(curate_main, write_spec):
    query = "SELECT *, CAST(alt_text AS INTEGER) AS n FROM input"  # fails on the first row, when it runs
    write_spec({**SPEC, "steps": [{"step": "sql", "params": {"query": query}}]}, table=TABLE)
    result = curate_main("run", "spec.yaml", "--json", "--quiet")
    assert result.code == 1, result.stderr
    shown = answer(result)
    assert shown["status"] == "failed" and shown["exit_code"] == 1
    assert f"error: {shown['error']}" in result.stderr and "step 'sql'" in shown["error"]
    assert [s["complete"] for s in shown["steps"]] == [True, False] and shown["outputs"] == []
    assert curate_main("inspect", "run", "--json").json()["error"] == shown["error"]


def test_a_spec_error_and_a_bad_option_answer_too(curate_main, write_spec):
    write_spec({**SPEC, "steps": [{"step": "filtr"}]}, table=TABLE)
    shown = answer(result := curate_main("run", "spec.yaml", "--json"))
    assert result.code == 2 and shown["status"] == "failed" and "unknown step 'filtr'" in shown["error"]
    assert shown["steps"] == [] and shown["run_dir"] is None
    shown = answer(result := curate_main("run", "spec.yaml", "--json", "--no-such-option"))
    assert result.code == 2 and "--no-such-option" in shown["error"]


def test_a_refused_lock_answers_with_exit_75(curate_main, write_spec, workdir):
    from curate.lock import locked

    write_spec(SPEC, table=TABLE)
    (workdir / "run").mkdir()
    with locked([(workdir / "run", "run directory")]):  # another run holds it
        result = curate_main("run", "spec.yaml", "--json", "--quiet")
    shown = answer(result)
    assert result.code == 75 and shown["exit_code"] == 75 and shown["status"] == "failed"
    assert "in use by another curate run" in shown["error"] and shown["run_dir"] == str(workdir / "run")


class Stopped(Step):
    """Stopped by SIGTERM, as curate.stopping's handler raises it."""

    name = "stopped"

    def process_shard(self, table, ctx):
        raise Terminated(signal.SIGTERM)


class Warns(Step):
    """Logs a warning, as plugins do."""

    name = "warns"

    def process_shard(self, table, ctx):
        logging.getLogger("curate_test_warns").warning("3 rows looked odd")
        return table


class Plugin:
    @hookimpl
    def curate_register_steps(self):
        return [Stopped, Warns]


def test_a_stopped_run_answers_interrupted(curate_main, write_spec, register_plugin):
    register_plugin(Plugin(), "stoppers")
    write_spec({**SPEC, "steps": [{"step": "stopped"}]}, table=TABLE)
    result = curate_main("run", "spec.yaml", "--json", "--quiet")
    shown = answer(result)
    assert result.code == 143 and shown["exit_code"] == 143 and shown["status"] == "interrupted"
    assert shown["error"] == "terminated (SIGTERM); run the same command again to resume"


def test_warnings_are_listed_and_still_shown(curate_main, write_spec, register_plugin):
    register_plugin(Plugin(), "stoppers")
    write_spec(SPEC, table=TABLE)
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    write_spec({**SPEC, "steps": [{"step": "warns"}], "outputs": []})  # out.parquet is left stale
    with warnings.catch_warnings(record=True) as shown_warnings:
        result = curate_main("run", "spec.yaml", "--json", "--quiet")
    shown = answer(result)
    assert result.code == 0 and "3 rows looked odd" in shown["warnings"]
    [stale] = [text for text in shown["warnings"] if "out.parquet" in text]
    assert "an earlier run's rows" in stale and any(str(w.message) == stale for w in shown_warnings)

