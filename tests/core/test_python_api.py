"""curate from Python (``curate.run``, ``validate``, ``plan_spec``, ``open_run``, ``Run``): the runs,
errors and tables of the CLI, in the caller's process, which keeps its own signal handlers, warning
filters and output (README, "From Python")."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml
from hypothesis import given, settings
from polars.testing import assert_frame_equal

import curate
from curate import Step, hookimpl, stopping
from curate.lock import held, locked
from curate.runstore import funnel
from curate.testing import strategies as cst
from tests.conftest import cli_env, sample_table
from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)
from tests.core.test_spec import FIVE_MISTAKES

TABLE = sample_table(60)
SPEC = {"name": "py", "source": {"path": "data.parquet"},
        "steps": [{"step": "normalize_text", "params": {"max_length": 40}},
                  {"step": "filter", "params": {"where": "length(alt_text) >= 3", "reason": "too_short"}},
                  {"step": "exact_dedup", "params": {"columns": ["url"]}},
                  {"step": "sample", "params": {"fraction": 0.7}}],
        "outputs": [{"format": "parquet", "path": "out.parquet"}],
        "run": {"dir": "run", "shard_size": 16}}


@pytest.fixture
def api(pm, workdir, monkeypatch) -> Path:
    """curate.run and friends with the test's plugin manager, in ``workdir``."""
    import curate.plugins

    monkeypatch.setattr(curate.plugins, "_default", pm)
    monkeypatch.chdir(workdir)
    return workdir


def views(run_dir: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(run_dir / "curate.duckdb"), read_only=True)


def without_seconds(rows: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key != "seconds"} for row in rows]


# -- a run: the CLI's tables -------------------------------------------------------------------------

@pytest.mark.parametrize("settings", [{}, {"fuse": False}, {"fuse_heads": True}],
                         ids=["fused", "unfused", "fused-heads"])
def test_a_run_returns_the_steps_and_tables_the_cli_writes(api, curate_main, write_spec, settings):
    write_spec({**SPEC, "run": {**SPEC["run"], **settings}}, table=TABLE)
    assert curate_main("run", "spec.yaml", "--run-dir", "cli", "--quiet").code == 0
    run = curate.run("spec.yaml", run_dir="api")
    assert run.status == "complete" and run.state == "complete" and run.error is None
    assert run.run_dir == api / "api" and run.warnings == []
    inspected = curate_main("inspect", "cli", "--json").json()
    assert without_seconds(run.funnel()) == without_seconds(funnel(inspected))
    assert [step.label for step in run.steps] == ["source", "normalize_text", "filter", "exact_dedup", "sample"]
    assert run.steps[2].dropped == inspected["steps"][2]["dropped"] and not any(s.cached for s in run.steps)
    [output] = run.outputs
    assert output.path == str(api / "api" / "out.parquet") and output.rows == run.steps[-1].rows_out
    assert output.bytes == (api / "api" / "out.parquet").stat().st_size
    assert_frame_equal(run.final().collect(), pl.read_parquet(api / "cli" / "out.parquet"))
    con = views(api / "cli")
    for step in run.steps:  # kept and dropped rows: the CLI run's views, every one
        name = f"{step.index:02d}_{step.label}"
        assert_frame_equal(run.table(step.label).collect(), con.sql(f'SELECT * FROM "{name}"').pl())
        assert_frame_equal(run.table(step.index, dropped=True).collect(),
                           con.sql(f'SELECT * FROM "{name}_dropped"').pl())
    assert_frame_equal(run.final().collect(), con.sql("SELECT * FROM final").pl())
    assert_frame_equal(run.lineage_table().collect(), con.sql("SELECT * FROM lineage").pl())
    uid, duplicate_of = con.sql("SELECT uid, duplicate_of FROM lineage WHERE step = 'exact_dedup' LIMIT 1").fetchall()[0]
    assert run.lineage(uid) == [curate.Drop(3, "exact_dedup", "exact_dedup", duplicate_of)]
    kept = run.final().select("uid").collect()["uid"][0]
    assert run.lineage(kept) == []
    again = curate.run("spec.yaml", run_dir="api")  # everything reused
    assert all(step.cached for step in again.steps)
    assert_frame_equal(curate.open_run("cli").final().collect(), again.final().collect())


def test_text_a_dict_and_a_file_run_the_same_spec(api, write_spec):
    path = write_spec(SPEC, table=TABLE)
    by_file = curate.run(path, run_dir="file")
    by_text = curate.run(path.read_text(), run_dir="text")
    by_dict = curate.run(SPEC, run_dir="dict")
    assert by_file.spec_hash == by_text.spec_hash == by_dict.spec_hash
    for other in (by_text, by_dict):
        assert_frame_equal(other.final().collect(), by_file.final().collect())
    assert by_file.manifest["spec_path"] == str(path) and by_dict.manifest["spec_path"] is None
    one_line = '{name: py, source: {path: data.parquet}, run: {dir: one}}'  # a str naming no file: YAML
    assert curate.run(one_line).final().collect().height == TABLE.height


def test_a_call_prints_nothing_and_progress_only_on_stderr_when_asked(api, write_spec, capsys):
    write_spec(SPEC, table=TABLE)
    curate.run("spec.yaml")
    assert capsys.readouterr() == ("", "")
    curate.run("spec.yaml", run_dir="loud", quiet=False)
    out, err = capsys.readouterr()
    assert out == "" and "00 source" in err and "04 sample" in err


def test_a_step_name_that_is_no_step_is_said_with_the_labels(api, write_spec):
    write_spec(SPEC, table=TABLE)
    run = curate.run("spec.yaml")
    with pytest.raises(curate.UsageError, match="no step labelled 'filtr'") as caught:
        run.table("filtr")
    assert "did you mean 'filter'?" in str(caught.value)
    with pytest.raises(curate.UsageError, match="no step 9"):
        run.table(9)


def test_a_step_whose_files_are_gone_is_refused_naming_it(api, write_spec):
    write_spec({**SPEC, "run": {**SPEC["run"], "fuse": False}}, table=TABLE)
    run = curate.run("spec.yaml")
    for path in (Path(run.steps[2].record["path"]) / "data").glob("*.parquet"):
        path.unlink()
    with pytest.raises(curate.RunDirError, match="step 'filter' of the run in .* is not as it was stored") as caught:
        run.table("filter")
    assert "curate run --resume" in str(caught.value)
    assert run.table("source").collect().height == TABLE.height


def test_a_moved_run_directory_says_its_tables_read_where_it_was_written(api, write_spec):
    import shutil

    write_spec(SPEC, table=TABLE)
    curate.run("spec.yaml")
    shutil.copytree(api / "run", api / "copy", symlinks=True)
    with pytest.warns(curate.RunMovedWarning, match=f"was written at {api / 'run'}.*curate relocate"):
        copied = curate.open_run("copy").final().collect()
    assert_frame_equal(copied, curate.open_run("run").final().collect())


# -- validate and plan: what the commands say --------------------------------------------------------

def test_validate_lists_the_problems_validate_json_lists(api, curate_main, write_spec):
    write_spec(FIVE_MISTAKES, table=TABLE)
    shown = curate_main("validate", "spec.yaml", "--json").json()
    problems = curate.validate("spec.yaml")
    assert len(problems) == 7 and [problem.as_json() for problem in problems] == shown["errors"]
    assert problems[0].line == 5 and problems[0].file == "spec.yaml"
    as_data = curate.validate(yaml.safe_load(FIVE_MISTAKES))  # the same problems, with no line to name
    assert sorted((p.path, p.message, p.hint) for p in as_data) == sorted((p.path, p.message, p.hint) for p in problems)
    assert {(p.line, p.file) for p in as_data} == {(None, "spec")}


def test_validate_of_a_run_directory_problem_and_of_a_good_spec(api, curate_main, write_spec):
    write_spec(SPEC, table=TABLE)
    assert curate.validate("spec.yaml") == [] and curate_main("validate", "spec.yaml", "--json").json()["ok"]
    (api / "run").mkdir()
    (api / "run" / "store").write_text("not a folder")  # refused before a run starts (a RunDirError)
    shown = curate_main("validate", "spec.yaml", "--json").json()
    assert [problem.as_json() for problem in curate.validate("spec.yaml")] == shown["errors"]
    assert shown["errors"] and "store" in shown["errors"][0]["message"]


def test_validate_warns_of_a_run_directory_in_use(api, curate_main, write_spec):
    write_spec(SPEC, table=TABLE)
    (api / "run").mkdir()
    with locked([(api / "run", "run directory")]):
        shown = curate_main("validate", "spec.yaml", "--json").json()
        with pytest.warns(curate.PreflightWarning) as warned:
            assert curate.validate("spec.yaml") == []
    assert [str(w.message) for w in warned] == shown["warnings"] and shown["warnings"]


def test_plan_spec_is_plan_json(api, curate_main, write_spec):
    write_spec(SPEC, table=TABLE)
    plan = curate.plan_spec("spec.yaml")
    assert plan.as_json() == json.loads(curate_main("plan", "spec.yaml", "--json").stdout)
    assert plan.run_dir == api / "run" and not any(step.cached for step in plan.steps)
    assert plan.outputs == [{"index": 0, "format": "parquet", "step": "sample", "path": "out.parquet"}]
    curate.run("spec.yaml")
    assert all(step.cached for step in curate.plan_spec("spec.yaml").steps)


def test_a_spec_error_is_raised_with_the_message_the_cli_prints(api, curate_main, write_spec):
    write_spec(FIVE_MISTAKES, table=TABLE)
    printed = curate_main("run", "spec.yaml").stderr
    with pytest.raises(curate.SpecError) as caught:
        curate.run("spec.yaml")
    assert f"error: {caught.value}\n" in printed and caught.value.run_dir is None
    assert len(caught.value.problems) == 7 and not (api / "run").exists()
    with pytest.raises(curate.SpecError, match="a spec is a path, YAML text or a dict, not int"):
        curate.run(3)  # type: ignore[arg-type]
    with pytest.raises(curate.UsageError, match=r"curate.run needs a spec \(or resume=RUN_DIR\)"):
        curate.run()
    with pytest.raises(curate.UsageError, match="allow_remote: 'bucket' is not a storage URL"):
        curate.run("spec.yaml", allow_remote=["bucket"])


# -- failure and resume -------------------------------------------------------------------------------

CALLS = "calls.txt"


class Flaky(Step):
    """Records each shard it is given in calls.txt; fails on shard 2 while the file 'fail' exists."""

    name = "flaky"

    def process_shard(self, table, ctx):
        with open(CALLS, "a") as calls:
            calls.write(f"{ctx.shard}\n")
        if ctx.shard == 2 and os.path.exists("fail"):
            raise RuntimeError("shard 2 broke")
        if ctx.shard == 1 and os.path.exists("stop"):
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, as a notebook's interrupt sends it
            time.sleep(30)  # the handler raises in this thread long before
        Path("handlers.json").write_text(json.dumps({
            "int": signal.getsignal(signal.SIGINT) is stopping._stop,
            "term": signal.getsignal(signal.SIGTERM) is stopping._stop}))
        return table


class ProbeCli(Step):
    """Runs `curate run` on this run's directory from another process, while this run holds it."""

    name = "probe_cli"

    def process_shard(self, table, ctx):
        if ctx.shard == 0:
            done = subprocess.run([sys.executable, "-m", "curate.cli", "run", "other.yaml", "--run-dir",
                                   str(ctx.run_dir), "--json", "--quiet"], env=cli_env(), capture_output=True,
                                  text=True, timeout=120, check=False)
            Path("probe.json").write_text(json.dumps({"code": done.returncode, "answer": done.stdout}))
        return table


class Plugin:
    @hookimpl
    def curate_register_steps(self):
        return [Flaky, ProbeCli]


FLAKY = {"name": "flaky", "source": {"path": "data.parquet"}, "steps": [{"step": "flaky"}],
         "outputs": [{"format": "parquet", "path": "out.parquet"}], "run": {"dir": "run", "shard_size": 10}}


def calls(workdir: Path) -> list[int]:
    return [int(line) for line in (workdir / CALLS).read_text().split()]


def test_a_failed_run_raises_with_its_run_dir_and_a_second_call_resumes_it(api, write_spec, register_plugin):
    register_plugin(Plugin(), "api_test_steps")
    write_spec(FLAKY, table=TABLE)
    (api / "fail").touch()
    with pytest.raises(curate.StepError) as caught:
        curate.run("spec.yaml")
    error = caught.value
    assert error.run_dir == api / "run" and error.step_label == "flaky" and error.shard == 2
    assert str(error).startswith("step 'flaky', shard 2 failed: RuntimeError: shard 2 broke")
    assert any("curate.open_run" in note for note in error.__notes__)
    failed = curate.open_run(error.run_dir)
    assert (failed.status, failed.error) == ("failed", str(error))
    assert [s.complete for s in failed.steps] == [True, False]
    with pytest.raises(curate.RunDirError, match="step 'flaky' did not finish"):
        failed.table("flaky")
    (api / "fail").unlink()
    resumed = curate.run(resume="run")  # the spec saved there, vouched for by spec.yaml
    assert resumed.status == "complete" and resumed.steps[0].cached
    assert calls(api) == [0, 1, 2, 2, 3, 4, 5]  # shards 0 and 1 finished before, and were kept
    assert_frame_equal(resumed.final().collect(), pl.read_parquet(api / "run" / "out.parquet"))


def test_a_run_directory_held_by_another_run_is_refused_as_the_cli_refuses_it(api, curate_main, write_spec):
    write_spec(SPEC, table=TABLE)
    (api / "run").mkdir()
    with locked([(api / "run", "run directory")]):
        printed = curate_main("run", "spec.yaml", "--quiet").stderr
        with pytest.raises(curate.RunLockedError) as caught:
            curate.run("spec.yaml")
        with pytest.raises(curate.RunLockedError):
            curate.run("spec.yaml", wait=0.3)
    assert f"error: {caught.value}\n" in printed and caught.value.run_dir == api / "run"
    assert caught.value.exit_code == 75 and "in use by another curate run" in str(caught.value)
    assert curate.run("spec.yaml").status == "complete"


def test_a_cli_run_on_a_directory_a_call_is_running_is_refused(api, write_spec, register_plugin):
    register_plugin(Plugin(), "api_test_steps")
    write_spec({**FLAKY, "steps": [{"step": "probe_cli"}]}, table=TABLE)
    write_spec({"source": {"path": "data.parquet"}}, name="other.yaml")
    assert curate.run("spec.yaml").status == "complete"
    probe = json.loads((api / "probe.json").read_text())
    answer = json.loads(probe["answer"])
    assert probe["code"] == 75 and answer["status"] == "failed"
    assert f"run directory {api / 'run'} is in use by another curate run: pid {os.getpid()}" in answer["error"]
    assert not held(api / "run")


# -- signals -------------------------------------------------------------------------------------------

@pytest.fixture
def host_handlers():
    """SIGINT handled by the host (a notebook, a script) with its own handler, put back after."""

    def host(signum, frame):
        raise AssertionError("curate's handler should have been installed during the run")

    previous = signal.signal(signal.SIGINT, host)
    try:
        yield host
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_the_run_resumably_and_puts_the_handlers_back(api, write_spec, register_plugin, host_handlers):
    register_plugin(Plugin(), "api_test_steps")
    write_spec(FLAKY, table=TABLE)
    term = signal.getsignal(signal.SIGTERM)
    (api / "stop").touch()
    with pytest.raises(KeyboardInterrupt) as caught:
        curate.run("spec.yaml")
    assert signal.getsignal(signal.SIGINT) is host_handlers and signal.getsignal(signal.SIGTERM) is term
    assert json.loads((api / "handlers.json").read_text()) == {"int": True, "term": term is signal.SIG_DFL}
    assert caught.value.run_dir == api / "run" and stopping.received() is None
    assert caught.value.__notes__ == [f"interrupted; the run in {api / 'run'} is kept: call curate.run again to "
                                      "resume it"]
    stopped = curate.open_run("run")
    assert (stopped.status, stopped.error) == ("interrupted", "interrupted during step 'flaky'")
    assert not held(api / "run")
    (api / "stop").unlink()
    resumed = curate.run("spec.yaml")
    assert resumed.status == "complete" and calls(api) == [0, 1, 1, 2, 3, 4, 5]


def test_a_stopped_no_cache_run_says_to_resume_without_it(api, write_spec, register_plugin, host_handlers):
    register_plugin(Plugin(), "api_test_steps")
    write_spec(FLAKY, table=TABLE)
    (api / "stop").touch()
    with pytest.raises(KeyboardInterrupt) as caught:
        curate.run("spec.yaml", no_cache=True)
    assert caught.value.__notes__ == [f"interrupted; the run in {api / 'run'} is kept: call curate.run again "
                                      "without no_cache=True to resume it (with it, the call would recompute "
                                      "what this run finished)"]


QUERY = ("SELECT * FROM input WHERE (SELECT count(*) FROM read_csv('ctl.csv') c, range(c.n) t(i) "
         "WHERE hash(i) % 7 = 3) >= 0")  # counts to the number in ctl.csv: 10**15 runs until stopped


def test_ctrl_c_in_a_duckdb_query_stops_it_at_once(api, write_spec, host_handlers):
    write_spec({**SPEC, "steps": [{"step": "sql", "params": {"query": QUERY}}]}, table=TABLE)
    (api / "ctl.csv").write_text(f"n\n{10**15}\n")
    manifest = api / "run" / "manifest.json"

    def interrupt_in_the_query() -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            steps = json.loads(manifest.read_text()).get("steps", []) if manifest.exists() else []
            if steps and steps[0].get("complete"):
                time.sleep(0.5)
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.02)

    sender = threading.Thread(target=interrupt_in_the_query)
    sender.start()
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            curate.run("spec.yaml")
    finally:
        sender.join()
    assert time.monotonic() - started < 60  # the query alone would run for days
    assert curate.open_run("run").error == "interrupted during step 'sql'"
    (api / "ctl.csv").write_text("n\n10\n")
    assert curate.run("spec.yaml").status == "complete"


def test_a_call_from_another_thread_installs_no_handler(api, write_spec, register_plugin):
    register_plugin(Plugin(), "api_test_steps")
    write_spec(FLAKY, table=TABLE)
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    found: list[object] = []
    worker = threading.Thread(target=lambda: found.append(curate.run("spec.yaml")))
    worker.start()
    worker.join(120)
    [run] = found
    assert run.status == "complete" and json.loads((api / "handlers.json").read_text()) == \
        {"int": False, "term": False}
    assert {signum: signal.getsignal(signum) for signum in before} == before


# -- cheap to import -----------------------------------------------------------------------------------

def test_importing_the_api_imports_no_table_or_model_library():
    probe = ("import json, sys\n"
             "import curate\n"
             "from curate import run, validate, plan_spec, open_run, Run, SpecError, Problem\n"
             "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('torch', 'open_clip', 'faiss', 'transformers', 'polars', 'duckdb', 'pyarrow', 'numpy', 'pydantic'))))\n")
    done = subprocess.run([sys.executable, "-c", probe], env=cli_env(), capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


# -- properties ----------------------------------------------------------------------------------------

@settings(max_examples=15)
@given(spec=cst.specs(run_dir="run"))
def test_a_spec_plans_alike_as_data_as_text_and_as_a_file(api, spec):
    """The same spec given as a dict, as its YAML text and as a file in the working directory is
    one spec: one hash, one plan (each step's fingerprint, hence its store folder and cache)."""
    if not (api / "data.parquet").exists():
        TABLE.write_parquet(api / "data.parquet")
    text = yaml.safe_dump(spec, sort_keys=False)
    (api / "spec.yaml").write_text(text)
    plans = [curate.plan_spec(given) for given in (spec, text, "spec.yaml", api / "spec.yaml")]
    assert len({plan.spec_hash for plan in plans}) == 1
    assert all(plan.as_json() == plans[0].as_json() and plan.outputs == plans[0].outputs for plan in plans)
    assert curate.validate(spec) == [] and curate.validate(text) == []


@settings(max_examples=8)
@given(table=cst.tables(max_rows=30), spec=cst.specs())
def test_every_table_of_a_run_is_its_view(pm, monkeypatch, tmp_path_factory, table, spec):
    """Run.table reads with Polars what the run's DuckDB views read with SQL (curate.steprows), for
    any spec: fused or not, a source read in place (fuse_heads), dedup drops with _duplicate_of."""
    import curate.plugins

    monkeypatch.setattr(curate.plugins, "_default", pm)
    work = tmp_path_factory.mktemp("run")
    table.write_parquet(work / "data.parquet")
    (work / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    run = curate.run(work / "spec.yaml", run_dir=work / "run")
    con = views(work / "run")
    try:
        for step in run.steps:
            name = f"{step.index:02d}_{step.label}"
            assert_frame_equal(run.table(step.label).collect(), con.sql(f'SELECT * FROM "{name}"').pl())
            assert_frame_equal(run.table(step.label, dropped=True).collect(),
                               con.sql(f'SELECT * FROM "{name}_dropped"').pl())
        assert_frame_equal(run.final().collect(), con.sql("SELECT * FROM final").pl())
        lineage = [name for (name,) in con.sql("SELECT table_name FROM information_schema.tables").fetchall()]
        if "lineage" in lineage:
            assert_frame_equal(run.lineage_table().collect(), con.sql("SELECT * FROM lineage").pl())
    finally:
        con.close()
    for output in run.outputs:
        assert_frame_equal(pl.read_parquet(output.path), run.final().collect())
