"""Runs are safe under concurrency and kills, and no row is lost without a reason.

Real ``curate run`` subprocesses race on one run directory and are SIGKILLed at seeded random
points; after a plain re-run every output is byte-identical to a clean run's."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from curate.errors import CurateError, StepError
from curate.hookspecs import hookimpl
from curate.plan import make_plan, plan_rows
from curate.runstore import StoreWarning
from curate.schema import DROP_REASON
from curate.spec import load_spec
from curate.step import Step
from curate.testing import run_spec
from tests.conftest import REPO, cli_env, sample_table

# The subprocesses import this checkout's curate and plugins, not whatever is installed.
CODE = [REPO, REPO / "plugins"]
# A generous bound on one CLI run: a cold first run took over 120 s at load 19 (imports, nice 10).
RUN_BOUND = 300


def steps_spec(delay: float = 0.0, gate: Path | None = None, **run: object) -> dict:
    """``gate``: a file the shout step waits for (see tests/core/conftest.py), to hold a run in it."""
    return {
        "name": "integrity",
        "source": {"path": "data.parquet"},
        "steps": [
            {"step": "normalize_text"},
            {"step": "shout", "params": {"delay": delay, "gate": str(gate or "")}},
            {"step": "exact_dedup", "params": {"columns": ["url", "alt_text"]}},
            {"step": "sample", "params": {"fraction": 0.7}},
        ],
        "outputs": [{"format": "parquet", "path": "out.parquet"}, {"format": "jsonl", "path": "out.jsonl"}],
        "run": {"dir": "run", "shard_size": 10, **run},
    }


def outputs_and_steps(run_dir: Path) -> dict[str, bytes]:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    out = {}
    for record in manifest["steps"]:
        for kind in ("data", "dropped"):
            for path in sorted((Path(record["path"]) / kind).glob("shard-*.parquet")):
                out[f"{record['index']:02d}_{record['label']}/{kind}/{path.name}"] = path.read_bytes()
    for name in ("out.parquet", "out.jsonl"):
        out[name] = (run_dir / name).read_bytes()
    return out


def command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "curate.cli", "run", "spec.yaml", "--quiet", *extra]


def wait_for(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def clean(write_spec, workdir, shout_plugin) -> dict[str, bytes]:
    """What an undisturbed run writes (delay is not part of any fingerprint)."""
    table = sample_table(120)
    table.write_parquet(workdir / "data.parquet")
    directory = workdir / "clean"
    write_spec(steps_spec(), table=table, directory=directory)
    done = subprocess.run(command(), cwd=directory, env=cli_env([shout_plugin, *CODE]), capture_output=True,
                          text=True, timeout=RUN_BOUND, check=False)
    assert done.returncode == 0, done.stderr
    return outputs_and_steps(directory / "run")


# -- two real processes on one run directory -------------------------------------------------------

def test_a_second_run_on_the_same_directory_is_refused_naming_the_holder(write_spec, workdir, shout_plugin, clean):
    directory = workdir / "race"
    gate = workdir / "gate"  # the first run waits in the shout step until the second has been refused
    write_spec(steps_spec(gate=gate), table=pl.read_parquet(workdir / "data.parquet"), directory=directory)
    env = cli_env([shout_plugin, *CODE])
    first = subprocess.Popen(command(), cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        wait_for(lambda: gate.with_suffix(".waiting").exists() or first.poll() is not None)
        assert first.poll() is None, first.communicate()
        second = subprocess.run(command(), cwd=directory, env=env, capture_output=True, text=True, timeout=RUN_BOUND,
                                check=False)
        gate.touch()
        out, err = first.communicate(timeout=RUN_BOUND)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert second.returncode == 75, second.stderr
    assert f"pid {first.pid} on host {socket.gethostname()}, started 20" in second.stderr
    assert "Traceback" not in second.stderr
    assert outputs_and_steps(directory / "run") == clean


def test_two_runs_started_a_second_apart_with_wait_both_end_byte_identical(write_spec, workdir, shout_plugin,
                                                                          clean):
    directory = workdir / "queue"
    gate = workdir / "gate"  # the first run waits in the shout step until the second waits for it
    write_spec(steps_spec(gate=gate), table=pl.read_parquet(workdir / "data.parquet"), directory=directory)
    env = cli_env([shout_plugin, *CODE])
    said = [workdir / "first.err", workdir / "second.err"]
    runs = []
    try:
        for index, stderr in enumerate(said):
            with stderr.open("w") as file:
                runs.append(subprocess.Popen(command("--wait"), cwd=directory, env=env,
                                             stdout=subprocess.DEVNULL, stderr=file, text=True))
            if index == 0:
                wait_for(lambda: gate.with_suffix(".waiting").exists() or runs[0].poll() is not None)
                assert runs[0].poll() is None, said[0].read_text()
        wait_for(lambda: "waiting for run directory" in said[1].read_text() or runs[1].poll() is not None)
        gate.touch()
        for run in runs:
            run.wait(timeout=RUN_BOUND)
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
    results = [stderr.read_text() for stderr in said]
    assert [r.returncode for r in runs] == [0, 0], results
    assert "waiting for run directory" in results[1]
    assert outputs_and_steps(directory / "run") == clean
    manifest = json.loads((directory / "run" / "manifest.json").read_text())
    assert all(r["cached"] for r in manifest["steps"])  # the second run reused the first one's work


def test_a_lock_left_by_a_killed_run_is_taken_over_saying_so(write_spec, workdir, shout_plugin, clean):
    directory = workdir / "stale"
    write_spec(steps_spec(), table=pl.read_parquet(workdir / "data.parquet"), directory=directory)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (directory / "run").mkdir()
    (directory / "run" / ".curate.lock").write_text(json.dumps(
        {"pid": dead.pid, "host": socket.gethostname(), "started_at": "2026-01-01T00:00:00+00:00"}))
    done = subprocess.run(command(), cwd=directory, env=cli_env([shout_plugin, *CODE]), capture_output=True,
                          text=True, timeout=RUN_BOUND, check=False)
    assert done.returncode == 0, done.stderr
    assert f"left by a run that no longer runs: pid {dead.pid}" in done.stderr
    assert outputs_and_steps(directory / "run") == clean


def test_a_lock_held_by_a_dead_pid_on_this_host_is_broken(tmp_path):
    """The flock is still held (a forked child kept the descriptor) but the pid it names is gone."""
    from curate.lock import DirectoryLock

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
         "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, sys.argv[2].encode()); print('held', flush=True); "
         "time.sleep(60)",
         str(tmp_path / ".curate.lock"),
         json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started_at": "2026-01-01T00:00:00+00:00"})],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        said: list[str] = []
        lock = DirectoryLock(tmp_path, "run directory")
        lock.acquire(wait=0, say=said.append)
        assert json.loads((tmp_path / ".curate.lock").read_text())["pid"] == os.getpid()
        lock.release()
        assert said and f"pid {dead.pid}" in said[0] and "no longer running" in said[0]
    finally:
        holder.kill()
        holder.communicate()


def test_a_live_holder_in_this_process_refuses_a_second_lock_with_its_name(tmp_path):
    from curate.errors import RunLockedError
    from curate.lock import DirectoryLock

    first = DirectoryLock(tmp_path, "store")
    first.acquire(wait=0)
    try:
        with pytest.raises(RunLockedError) as caught:
            DirectoryLock(tmp_path, "store").acquire(wait=0.3, say=lambda _: None)
        assert f"store {tmp_path} is in use by another curate run: pid {os.getpid()}" in str(caught.value)
        assert caught.value.exit_code == 75
    finally:
        first.release()
    assert not (tmp_path / ".curate.lock").exists()


# -- kill -9 at random points ----------------------------------------------------------------------

def test_runs_killed_at_random_points_resume_to_byte_identical_outputs(write_spec, workdir, shout_plugin, clean):
    env = cli_env([shout_plugin, *CODE])
    directory = workdir / "timed"
    write_spec(steps_spec(delay=0.05), table=pl.read_parquet(workdir / "data.parquet"), directory=directory)
    started = time.monotonic()
    subprocess.run(command(), cwd=directory, env=env, capture_output=True, timeout=RUN_BOUND, check=True)
    whole = time.monotonic() - started
    draws = random.Random(20261204)
    for attempt in range(3):
        directory = workdir / f"killed-{attempt}"
        write_spec(steps_spec(delay=0.05), table=pl.read_parquet(workdir / "data.parquet"), directory=directory)
        process = subprocess.Popen(command(), cwd=directory, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(draws.uniform(0.3, whole))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        again = subprocess.run(command(), cwd=directory, env=env, capture_output=True, text=True, timeout=RUN_BOUND,
                               check=False)
        assert again.returncode == 0, again.stderr
        assert outputs_and_steps(directory / "run") == clean, f"attempt {attempt}"


# -- a cached step is reused only when its files agree with its marker ----------------------------

SPEC = {"name": "cache", "source": {"path": "data.parquet"},
        "steps": [{"step": "normalize_text"}, {"step": "exact_dedup", "params": {"columns": ["url"]}}],
        "run": {"shard_size": 10}}


def _store_files(manifest: dict) -> dict[str, bytes]:
    return {f"{r['index']}/{p.relative_to(r['path'])}": p.read_bytes() for r in manifest["steps"]
            for p in sorted(Path(r["path"]).rglob("shard-*.parquet"))}


@pytest.mark.parametrize("damage", ["remove_data_shard", "truncate_table_step", "remove_dropped_shard"])
def test_a_step_whose_files_disagree_with_its_marker_is_recomputed(pm, tmp_path, damage):
    tables = {"data.parquet": sample_table(95)}
    first = run_spec(SPEC, tmp_path / "a", tables=tables, pm=pm)
    source, normalize, dedup = (Path(r["path"]) for r in first["steps"])
    if damage == "remove_data_shard":  # a step cut in half by a second run, published whole
        (source / "data" / "shard-00004.parquet").unlink()
    elif damage == "truncate_table_step":
        path = dedup / "data" / "shard-00000.parquet"
        pl.read_parquet(path).head(3).write_parquet(path)
    else:
        (dedup / "dropped" / "shard-00000.parquet").unlink()
    plan = make_plan(load_spec(tmp_path / "a" / "spec.yaml"), pm, tmp_path / "a" / "run")
    cached = [row["cached"] for row in plan_rows(plan)]  # what `curate plan` shows
    assert cached.count(False) == 1
    with pytest.warns(StoreWarning, match=r"is recomputed: .*shard-0000[04]\.parquet"):
        again = run_spec(SPEC, tmp_path / "a", pm=pm)  # rewriting the data would change the source's fingerprint
    fresh = run_spec(SPEC, tmp_path / "b", tables=tables, pm=pm)
    assert [r["cached"] for r in again["steps"]] == cached
    assert any("its marker recorded" in r.get("cache_rejected", "") for r in again["steps"])
    assert _store_files(again) == _store_files(first) == _store_files(fresh)
    assert [r["rows_out"] for r in again["steps"]] == [r["rows_out"] for r in fresh["steps"]]


def test_a_shard_marker_whose_file_is_gone_is_redone(pm, tmp_path):
    spec = {**SPEC, "steps": [{"step": "normalize_text"}]}
    tables = {"data.parquet": sample_table(45)}
    first = run_spec(spec, tmp_path, tables=tables, pm=pm)
    step = Path(first["steps"][1]["path"])
    original = (step / "data" / "shard-00001.parquet").read_bytes()
    (step / "_COMPLETE.json").unlink()  # killed after its shards, before the step's marker
    (step / "data" / "shard-00001.parquet").unlink()
    with pytest.warns(StoreWarning, match="shard 1 was recomputed: .*shard-00001.parquet, which its marker "
                                          "recorded, is missing"):
        again = run_spec(spec, tmp_path, pm=pm)
    assert (step / "data" / "shard-00001.parquet").read_bytes() == original
    assert again["steps"][1]["rows_out"] == first["steps"][1]["rows_out"]


# -- nothing lost, enforced -------------------------------------------------------------------------

class LosesRows(Step):
    """A third-party step with a bug: returns fewer rows, without a _drop_reason."""

    name = "loses_rows"

    def process_shard(self, table, ctx):
        return table.head(table.height - 2) if ctx.shard == 1 else table


class InventsUids(Step):
    name = "invents_uids"

    def process_shard(self, table, ctx):
        return table.with_columns(pl.col("uid") + "x") if ctx.shard == 2 else table


class RepeatsRows(Step):
    name = "repeats_rows"

    def process_shard(self, table, ctx):
        return pl.concat([table, table.head(1)]) if ctx.shard == 0 else table


class LosesRowsInTable(Step):
    name = "loses_rows_in_table"
    scope = "table"

    def process_table(self, table, ctx):
        frame = table.scan().collect()
        yield frame.filter(pl.col("score") >= 0.5)  # the rest should carry a _drop_reason


class DropsWithReason(Step):
    name = "drops_with_reason"
    scope = "table"

    def process_table(self, table, ctx):
        frame = table.scan().collect()
        yield frame.with_columns(pl.when(pl.col("score") < 0.5).then(pl.lit("low")).alias(DROP_REASON))


class LostSteps:
    @hookimpl
    def curate_register_steps(self):
        return [LosesRows, InventsUids, RepeatsRows, LosesRowsInTable, DropsWithReason]


@pytest.mark.parametrize(("step", "shard", "says"), [
    ("loses_rows", 1, "2 input rows came out neither kept nor dropped with a reason"),
    ("invents_uids", 2, "10 output rows have uids that were not in its input"),
    ("repeats_rows", 0, "1 uid came out more than once"),
    ("loses_rows_in_table", None, "input rows came out neither kept nor dropped with a reason"),
])
def test_a_step_that_loses_or_invents_rows_fails_naming_itself(pm, register_plugin, tmp_path, step, shard, says):
    register_plugin(LostSteps(), "lossy")
    spec = {**SPEC, "steps": [{"step": "normalize_text"}, {"step": step, "name": "suspect"}]}
    with pytest.raises(StepError) as caught:
        run_spec(spec, tmp_path, tables={"data.parquet": sample_table(45)}, pm=pm)
    assert caught.value.step_label == "suspect" and caught.value.shard == shard
    assert says in str(caught.value) and "_drop_reason" in str(caught.value)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and not manifest["steps"][2]["complete"]
    assert isinstance(caught.value, CurateError)


def test_rows_dropped_with_a_reason_pass_the_check(pm, register_plugin, tmp_path):
    register_plugin(LostSteps(), "lossy")
    spec = {**SPEC, "steps": [{"step": "drops_with_reason"}]}
    manifest = run_spec(spec, tmp_path, tables={"data.parquet": sample_table(45)}, pm=pm)
    record = manifest["steps"][1]
    assert record["rows_out"] + record["dropped"]["low"] == record["rows_in"] == 45


def test_lock_files_do_not_linger_after_a_run(pm, tmp_path):
    run_spec(SPEC, tmp_path, tables={"data.parquet": sample_table(20)}, pm=pm)
    assert not list((tmp_path / "run").rglob(".curate.lock"))
    assert os.listdir(tmp_path / "run" / "store")


# -- SIGTERM, and what inspect says of a run that stopped ------------------------------------------

def test_sigterm_stops_a_run_as_ctrl_c_does_and_it_resumes(write_spec, workdir, shout_plugin, clean):
    """SIGTERM (systemd, docker stop, Kubernetes, `timeout`) ended a run without a word: exit 143,
    its manifest "running" for good, its scratch files left (operator probe)."""
    env = cli_env([shout_plugin, *CODE])
    directory = workdir / "terminated"
    gate = workdir / "gate"  # the run waits in the shout step's first shard until it is stopped
    write_spec(steps_spec(gate=gate), table=pl.read_parquet(workdir / "data.parquet"), directory=directory)
    process = subprocess.Popen(command(), cwd=directory, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    wait_for(lambda: gate.with_suffix(".waiting").exists() or process.poll() is not None)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    gate.touch()
    assert process.returncode == 143, stderr
    assert "terminated (SIGTERM); run the same command again to resume" in stderr and "Traceback" not in stderr
    manifest = json.loads((directory / "run" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["error"].startswith("terminated (SIGTERM) during ")
    said = subprocess.run([sys.executable, "-m", "curate.cli", "inspect", "run"], cwd=directory, env=env,
                          capture_output=True, text=True, timeout=60, check=True).stdout
    assert "status interrupted" in said and "error: terminated (SIGTERM) during" in said
    again = subprocess.run(command(), cwd=directory, env=env, capture_output=True, text=True, timeout=RUN_BOUND,
                           check=False)
    assert again.returncode == 0, again.stderr
    assert outputs_and_steps(directory / "run") == clean


def test_one_ctrl_c_stops_a_run_even_with_polars_loaded(write_spec, workdir, shout_plugin, clean):
    """A probe saw one SIGINT ignored: its curate was started in the background by a script, where
    SIGINT is ignored, and Polars' runtime (which installs a SIGINT handler of its own when
    imported) passed the first one on to that; from a terminal (SIGINT's default), one stops it."""
    env = cli_env([shout_plugin, *CODE])
    directory = workdir / "interrupted"
    gate = workdir / "gate"  # the run waits in the shout step's first shard until it is stopped
    write_spec(steps_spec(gate=gate), table=pl.read_parquet(workdir / "data.parquet"), directory=directory)
    process = subprocess.Popen(command(), cwd=directory, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for(lambda: gate.with_suffix(".waiting").exists() or process.poll() is not None)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    gate.touch()
    assert process.returncode == 130, stderr
    assert "interrupted; run the same command again to resume" in stderr and "Traceback" not in stderr
    again = subprocess.run(command(), cwd=directory, env=env, capture_output=True, text=True, timeout=RUN_BOUND,
                           check=False)
    assert again.returncode == 0, again.stderr
    assert outputs_and_steps(directory / "run") == clean


def test_inspect_says_a_killed_run_no_longer_runs(write_spec, workdir, shout_plugin):
    from tests.conftest import kill_when_ready

    env = cli_env([shout_plugin, *CODE])
    write_spec(steps_spec(delay=0.05), table=sample_table(120))
    manifest = workdir / "run" / "manifest.json"
    kill_when_ready(command(), workdir, env, lambda: manifest.exists() and "running" in manifest.read_text())
    said = subprocess.run([sys.executable, "-m", "curate.cli", "inspect", "run"], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=60, check=True).stdout
    assert "status stopped: no process runs it now (killed, or its machine went down); run it again to resume" in said


def test_a_lock_is_held_only_while_its_holder_lives(tmp_path):
    from curate.lock import DirectoryLock, held

    assert not held(tmp_path)
    lock = DirectoryLock(tmp_path, "run directory")
    lock.acquire(wait=0)
    try:
        assert held(tmp_path)
    finally:
        lock.release()
    assert not held(tmp_path)
    os.mkfifo(tmp_path / ".curate.lock")
    assert not held(tmp_path)  # a pipe there is no lock, and is never waited on


def test_inspect_says_where_a_moved_run_directory_was_written(curate_main, write_spec, workdir):
    write_spec({"name": "moved", "source": {"path": "data.parquet"}, "run": {"dir": "run"}}, table=sample_table(20))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    os.rename(workdir / "run", workdir / "elsewhere")
    said = curate_main("inspect", "elsewhere")
    assert said.code == 0 and f"was written at {workdir / 'run'}" in said.stdout
    assert "curate run --resume elsewhere" in said.stdout
    os.rename(workdir / "elsewhere", workdir / "run")
    assert "was written at" not in curate_main("inspect", "run").stdout


def test_a_run_directory_curate_may_not_write_is_an_error_not_a_bug(curate_main, write_spec, monkeypatch):
    import errno

    from curate.lock import DirectoryLock

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self.path))

    write_spec({"name": "ro", "source": {"path": "data.parquet"}, "run": {"dir": "run"}}, table=sample_table(20))
    monkeypatch.setattr(DirectoryLock, "acquire", read_only)
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 1 and "internal error" not in result.stderr
    assert "error: cannot use" in result.stderr and ".curate.lock: Read-only file system" in result.stderr
    assert "run where you may write" in result.stderr


def test_an_error_outside_a_steps_code_names_what_was_running():
    import errno

    from curate.diskspace import output_fix
    from curate.errors import ResourceError

    full = OSError(errno.ENOSPC, "No space left on device")
    error = ResourceError.from_exception(full, "step 'sample'")
    assert error is not None and str(error).startswith("the run failed during step 'sample': ")
    assert "lower run.min_free_disk" not in output_fix("out.parquet", 0)
    assert "lower run.min_free_disk" in output_fix("out.parquet", 512 * 10**6)
