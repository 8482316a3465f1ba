"""A signal that lands while DuckDB runs a query stops the run as it does anywhere else (probe findings
1, 2 and 5): DuckDB's Python client ran the handler, dropped its exception and let the query run on,
then raised "Query interrupted", so SIGINT and SIGTERM came out as a plugin's failure (exit 1) or
not at all (exit 0, complete), and SIGHUP killed the run without a word, its manifest "running"."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from curate.lock import held
from tests.conftest import cli_env, sample_table

# The sql step's query counts to the number in ctl.csv: with 10**15 it runs until it is stopped.
QUERY = ("SELECT * FROM input WHERE (SELECT count(*) FROM read_csv('ctl.csv') c, range(c.n) t(i) "
         "WHERE hash(i) % 7 = 3) >= 0")
SPEC = {
    "name": "stop",
    "source": {"path": "data.parquet"},
    "steps": [{"step": "sql", "params": {"query": QUERY}}],
    "outputs": [{"format": "parquet", "path": "out.parquet"}],
    "run": {"dir": "run"},
}
# python -m curate with SIGINT's and SIGHUP's default handlers: a test runner started in the background
# has SIGINT ignored, one started under nohup SIGHUP, and curate leaves a signal ignored at its start so
COMMAND = [sys.executable, "-c",
           "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
           "signal.signal(signal.SIGHUP, signal.SIG_DFL); "
           "from curate.cli import main; sys.exit(main())",
           "run", "spec.yaml", "--quiet"]


def project(directory: Path, count: int) -> Path:
    directory.mkdir(parents=True)
    sample_table(30).write_parquet(directory / "data.parquet")
    (directory / "spec.yaml").write_text(yaml.safe_dump(SPEC, sort_keys=False))
    (directory / "ctl.csv").write_text(f"n\n{count}\n")
    return directory


def run(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(COMMAND, cwd=directory, env=cli_env(), capture_output=True, text=True, timeout=120,
                          check=False)


def written(directory: Path) -> dict[str, bytes]:
    manifest = json.loads((directory / "run" / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    out = {"out.parquet": (directory / "run" / "out.parquet").read_bytes()}
    for record in manifest["steps"]:
        for path in sorted((Path(record["path"]) / "data").glob("shard-*.parquet")):
            out[f"{record['label']}/{path.name}"] = path.read_bytes()
    return out


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> dict[str, bytes]:
    directory = project(tmp_path_factory.mktemp("clean") / "work", 10)
    done = run(directory)
    assert done.returncode == 0, done.stderr
    return written(directory)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks (100 a second on Linux)


def in_the_query(process: subprocess.Popen[str], manifest: Path) -> None:
    """Return once the sql step's query is running: the source step is recorded, and the process has
    burned CPU since (nothing but the query does then). Bounded generously: a loaded machine is slow."""
    deadline = time.monotonic() + 90
    def source_done() -> bool:
        steps = json.loads(manifest.read_text()).get("steps", []) if manifest.exists() else []
        return bool(steps and steps[0]["complete"])

    while not source_done():
        assert process.poll() is None and time.monotonic() < deadline, "the run never reached its sql step"
        time.sleep(0.02)
    start = cpu_seconds(process.pid)
    while cpu_seconds(process.pid) < start + 0.5:
        assert process.poll() is None and time.monotonic() < deadline, "the query never ran"
        time.sleep(0.02)


@pytest.mark.parametrize(("signum", "code", "said"), [
    (signal.SIGINT, 130, "interrupted"),
    (signal.SIGTERM, 143, "terminated (SIGTERM)"),
    (signal.SIGHUP, 129, "terminated (SIGHUP)"),
])
def test_a_signal_in_a_duckdb_query_stops_the_run_and_it_resumes(tmp_path, clean, signum, code, said):
    directory = project(tmp_path / "work", 10**15)
    process = subprocess.Popen(COMMAND, cwd=directory, env=cli_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        in_the_query(process, directory / "run" / "manifest.json")
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)  # the query alone would run for days
    finally:
        process.kill()
        process.wait()
        process.stderr.close()  # also when communicate gave up: an open pipe fails a later test
    assert process.returncode == code, stderr
    assert f"{said}; run the same command again to resume" in stderr and "Traceback" not in stderr
    manifest = json.loads((directory / "run" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["error"] == f"{said} during step 'sql'"
    assert not held(directory / "run")
    (directory / "ctl.csv").write_text("n\n10\n")
    again = run(directory)
    assert again.returncode == 0, again.stderr
    assert written(directory) == clean


SLOW_REPORT = '''
"""curate-slowreport: a run-finished hook that waits, so a test can stop a run while it reports."""
import time
from pathlib import Path

from curate import hookimpl


@hookimpl
def curate_run_finished(run_dir, manifest):
    (Path(run_dir) / "reporting").touch()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.05)
'''


def test_a_stop_while_reporting_says_the_run_completed(tmp_path, make_plugin_dist):
    """SIGTERM after the manifest said complete (in the report hook) said "run again to resume"
    (probe finding 14): it says the run completed and only its report is missing."""
    plugin = make_plugin_dist("curate-slowreport", SLOW_REPORT, version="0.1", entry_point="slowreport")
    directory = project(tmp_path / "work", 10)
    process = subprocess.Popen(COMMAND, cwd=directory, env=cli_env([plugin]), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not (directory / "run" / "reporting").exists():
            assert process.poll() is None and time.monotonic() < deadline, "the run never reported"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
        process.stderr.close()  # also when communicate gave up: an open pipe fails a later test
    assert process.returncode == 143, stderr
    assert "terminated (SIGTERM) while reporting on the run, which had completed (its outputs are written); " \
           "run the same command again to write its report" in stderr
    assert "resume" not in stderr and "Traceback" not in stderr
    assert json.loads((directory / "run" / "manifest.json").read_text())["status"] == "complete"
    assert not held(directory / "run")



ENDLESS_PLUGIN = '''
"""curate-endless: a step whose query on a connection of its own never ends (a plugin's join gone wrong)."""
from curate import Step, hookimpl
from curate.duck import connect


class Endless(Step):
    name = "endless"
    thread_safe = True  # its shards run on a thread pool, and the signal lands in the main thread

    def process_shard(self, table, ctx):
        con = connect()
        con.sql("SELECT count(*) FROM range(1000000000000000) t(i) WHERE hash(i) % 7 = 3").fetchall()
        return table


@hookimpl
def curate_register_steps():
    return [Endless]
'''


def test_sigterm_stops_a_query_on_a_connection_a_plugin_opened_with_curate_duck_connect(tmp_path,
                                                                                         make_plugin_dist):
    """curate.duck.connect is how a plugin opens DuckDB connections of its own: a stop interrupts their
    queries as it does curate's. (The same step on duckdb.connect(), or on a plain ``.cursor()`` of a
    curate connection, ran on for as long as its query did: the signal only reaches the main thread.)"""
    plugin = make_plugin_dist("curate-endless", ENDLESS_PLUGIN, version="0.1", entry_point="endless")
    directory = project(tmp_path / "work", 10)
    spec = {**SPEC, "steps": [{"step": "endless"}]}
    (directory / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    process = subprocess.Popen(COMMAND, cwd=directory, env=cli_env([plugin]), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        in_the_query(process, directory / "run" / "manifest.json")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)  # the query alone would run for days
    finally:
        process.kill()
        process.wait()
        process.stderr.close()  # also when communicate gave up: an open pipe fails a later test
    assert process.returncode == 143, stderr
    assert "terminated (SIGTERM); run the same command again to resume" in stderr
    assert "Traceback" not in stderr
    manifest = json.loads((directory / "run" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert manifest["error"] == "terminated (SIGTERM) during step 'endless'"


# Ways to a DuckDB connection or cursor that no stop interrupts (curate.stopping watches only those
# curate.duck opens): the module's default connection, a new one, a plain cursor of a watched one.
UNWATCHED = re.compile(r"\bduckdb\.(connect|default_connection|sql|query|execute|read_\w+|from_\w+)\("
                       r"|\.cursor\(")


def test_plugins_open_duckdb_connections_and_cursors_through_curate_duck():
    """A plugin's query on a connection curate does not watch runs on after SIGINT/SIGTERM until it ends
    (the test above, with duckdb.connect()): plugins use curate.duck.connect, cursor, shard_connection
    or ctx.duckdb(). The same rule in CONTRIBUTING.md ("DuckDB connections")."""
    from tests.conftest import REPO

    found = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
             for path in sorted((REPO / "plugins").rglob("*.py"))
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if UNWATCHED.search(line.split("#", 1)[0])]
    assert not found, "open these through curate.duck (connect, cursor) instead:\n" + "\n".join(found)
