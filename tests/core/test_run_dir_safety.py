"""The run directory and its outputs: what `curate run --resume` runs, which paths validation
refuses (curate's own files, the user's files, devices), and damaged run directories, each a
short message naming the path and the fix, never an internal error."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import sample_table

BASE = {
    "name": "base",
    "source": {"path": "data.parquet"},
    "steps": [{"step": "normalize_text"}, {"step": "filter", "params": {"where": "score > 0.5"}},
              {"step": "exact_dedup", "params": {"columns": ["url"]}}],
    "outputs": [{"format": "parquet", "path": "out.parquet"}],
    "run": {"dir": "runs/{name}", "shard_size": 10},
}


def spec_with(**changes) -> dict:
    spec = json.loads(json.dumps(BASE))
    for key, value in changes.items():
        spec[key] = value
    return spec


def test_resume_runs_the_saved_spec_not_the_edited_original(curate_main, write_spec, workdir, monkeypatch):
    # The spec lives in a folder of its own, so its relative source path is relative to that folder.
    specs = workdir / "specs"
    path = write_spec(spec_with(run={"dir": "run", "shard_size": 10}), table=sample_table(40), directory=specs)
    first = curate_main("run", "specs/spec.yaml", "--quiet")
    assert first.code == 0, first
    saved = (workdir / "run" / "spec.yaml").read_text()
    rows = [r["rows_out"] for r in json.loads((workdir / "run" / "manifest.json").read_text())["steps"]]

    edited = spec_with(run={"dir": "run", "shard_size": 10})
    edited["steps"][1]["params"]["where"] = "score > 0.9"
    path.write_text(yaml.safe_dump(edited, sort_keys=False))
    monkeypatch.chdir(workdir.parent)  # relative paths must not depend on where resume is called
    resumed = curate_main("run", "--resume", "work/run", "--quiet")
    assert resumed.code == 0, resumed
    assert "has changed since this run started" in resumed.stderr
    assert f"curate run {path} --run-dir work/run" in resumed.stderr
    # no spec file of the user's says what the saved one says any more: it runs as --untrusted
    assert "as untrusted" in resumed.stderr
    manifest = json.loads((workdir / "run" / "manifest.json").read_text())
    assert [r["rows_out"] for r in manifest["steps"]] == rows
    assert all(r["cached"] for r in manifest["steps"])
    expected = yaml.safe_load(saved)
    expected["run"]["untrusted"] = True  # saved as it ran
    assert yaml.safe_load((workdir / "run" / "spec.yaml").read_text()) == expected
    assert manifest["spec_path"] == str(path)  # a later resume still finds the original directory


def test_resume_of_an_unchanged_spec_says_nothing(curate_main, write_spec, workdir):
    write_spec(spec_with(run={"dir": "run", "shard_size": 10}), table=sample_table(40))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    resumed = curate_main("run", "--resume", "run", "--quiet")
    assert resumed.code == 0, resumed
    assert "has changed since" not in resumed.stderr


def test_resume_without_a_saved_spec_says_how_to_run_again(curate_main, write_spec, workdir):
    write_spec(spec_with(run={"dir": "run", "shard_size": 10}), table=sample_table(40))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    (workdir / "run" / "spec.yaml").unlink()
    resumed = curate_main("run", "--resume", "run", "--quiet")
    assert resumed.code == 2, resumed
    assert "has no spec.yaml" in resumed.stderr and "--run-dir run" in resumed.stderr
    assert "internal error" not in resumed.stderr


def validate_outputs(curate_main, write_spec, outputs: list[dict], **changes):
    write_spec(spec_with(outputs=outputs, **changes), table=sample_table(20))
    return curate_main("validate", "spec.yaml")


@pytest.mark.parametrize("path", ["manifest.json", "spec.yaml", "curate.duckdb", "report.html", ".curate.lock",
                                  "store", "store/x.parquet", "steps", "steps/01_x", "tmp/out.parquet", ".", ""])
def test_an_output_over_curates_own_run_files_is_refused(curate_main, write_spec, path):
    result = validate_outputs(curate_main, write_spec, [{"format": "parquet", "path": path}])
    assert result.code == 2, result
    assert "spec.yaml:" in result.stderr and "outputs[0].path" in result.stderr
    assert "run directory" in result.stderr or "step store" in result.stderr
    assert "internal error" not in result.stderr


def test_two_outputs_on_one_path_are_refused(curate_main, write_spec):
    result = validate_outputs(curate_main, write_spec, [{"format": "parquet", "path": "out.parquet"},
                                                        {"format": "csv", "path": "./out.parquet"}])
    assert result.code == 2, result
    assert "outputs[1].path: './out.parquet' is also the path of outputs[0]" in result.stderr


def test_an_output_nested_in_another_is_refused(curate_main, write_spec):
    result = validate_outputs(curate_main, write_spec, [{"format": "parquet", "path": "out"},
                                                        {"format": "csv", "path": "out/x.csv"}])
    assert result.code == 2, result
    assert "outputs[1].path: 'out/x.csv' and the path of outputs[0] are one inside the other" in result.stderr


def test_an_output_on_an_existing_folder_a_device_or_under_a_file_is_refused(curate_main, write_spec, workdir):
    (workdir / "folder").mkdir()
    (workdir / "afile").write_text("mine")
    result = validate_outputs(curate_main, write_spec, [
        {"format": "parquet", "path": str(workdir / "folder")},
        {"format": "csv", "path": "/dev/full"},
        {"format": "parquet", "path": str(workdir / "afile" / "out.parquet")},
    ])
    assert result.code == 2, result
    assert "outputs[0].path" in result.stderr and "is an existing folder" in result.stderr
    assert "outputs[1].path: '/dev/full' is /dev/full, not a regular file" in result.stderr
    assert "outputs[2].path" in result.stderr and f"is under {workdir / 'afile'}, which is a file" in result.stderr
    assert Path("/dev/full").is_char_device()


def test_ordinary_outputs_still_validate_and_rerun(curate_main, write_spec, workdir):
    outputs = [{"format": "parquet", "path": "out.parquet"}, {"format": "csv", "path": "sub/out.csv"},
               {"format": "parquet", "path": str(workdir / "elsewhere.parquet")}]
    assert validate_outputs(curate_main, write_spec, outputs).code == 0
    for _ in range(2):  # the second run finds its own outputs in place and replaces them
        result = curate_main("run", "spec.yaml", "--quiet")
        assert result.code == 0, result
    assert (workdir / "runs" / "base" / "sub" / "out.csv").is_file() and (workdir / "elsewhere.parquet").is_file()


def test_a_run_dir_holding_someone_elses_files_is_refused(curate_main, write_spec, workdir):
    (workdir / "report.html").write_text("<p>my own page</p>")
    (workdir / "manifest.json").write_text('{"mine": true}')
    result = validate_outputs(curate_main, write_spec, [{"format": "parquet", "path": "out.parquet"}],
                              run={"dir": "."})
    assert result.code == 2, result
    assert "spec.yaml:" in result.stderr and "run.dir: '.' is" in result.stderr
    assert "holds files but no curate run" in result.stderr and "report.html" in result.stderr
    assert "empty this one" in result.stderr
    assert curate_main("run", "spec.yaml", "--quiet").code == 2
    assert (workdir / "report.html").read_text() == "<p>my own page</p>"


def test_a_run_dir_that_is_a_file_is_refused(curate_main, write_spec, workdir):
    (workdir / "taken").write_text("a file")
    result = validate_outputs(curate_main, write_spec, [], run={"dir": "taken"})
    assert result.code == 2, result
    assert "run.dir: 'taken' is" in result.stderr and "a file, not a folder" in result.stderr
    ran = curate_main("run", "spec.yaml", "--quiet")
    assert ran.code == 2 and "a file, not a folder" in ran.stderr and "internal error" not in ran.stderr, ran


def test_the_spec_file_inside_its_own_run_dir_is_refused(curate_main, write_spec, workdir):
    write_spec(spec_with(run={"dir": "run"}), table=sample_table(20))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    # run.dir is relative to the working directory, the spec's paths to the spec file
    write_spec(spec_with(source={"path": str(workdir / "data.parquet")}, run={"dir": "run"}),
               directory=workdir / "run")
    result = curate_main("validate", "run/spec.yaml")
    assert result.code == 2, result
    assert "is in the run directory" in result.stderr and "rename the spec file" in result.stderr


def test_an_existing_run_dir_reruns_and_resumes_in_place(curate_main, write_spec, workdir):
    write_spec(spec_with(run={"dir": "run"}), table=sample_table(20))
    (workdir / "run").mkdir()  # an empty folder is a fine place for a new run
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    assert curate_main("validate", "spec.yaml").code == 0
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    assert curate_main("run", "--resume", "run", "--quiet").code == 0
    (workdir / "run" / "manifest.json").write_text("{")  # damaged: still curate's, a re-run repairs it
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    assert json.loads((workdir / "run" / "manifest.json").read_text())["status"] == "complete"


DAMAGED_MANIFESTS = ['{"name": "base", "spec_hash": "ab', "", "[1,2", "[]", '{"status": 5, "steps": "x"}',
                     '{"steps": [{"label": 5}]}', '{"steps": [{"index": true, "label": "a", "step": "b"}]}',
                     '{"steps": [], "outputs": [{"format": "csv"}]}', '"text"', "\xff"]


@pytest.fixture
def finished(curate_main, write_spec, workdir) -> Path:
    write_spec(spec_with(run={"dir": "run", "shard_size": 10}), table=sample_table(20))
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 0, result
    return workdir / "run"


@pytest.mark.parametrize("text", DAMAGED_MANIFESTS)
def test_a_damaged_manifest_is_a_clear_error_and_a_rerun_repairs_it(curate_main, finished, text):
    from curate_report.page import write_report  # `curate report RUN_DIR`

    from curate.errors import RunDirError

    (finished / "manifest.json").write_bytes(text.encode("latin-1"))
    for command in (["inspect", "run"], ["inspect", "run", "--json"], ["run", "--resume", "run", "--quiet"]):
        result = curate_main(*command)
        assert result.code == 2, (command, result)
        assert "the run's manifest run/manifest.json is damaged" in result.stderr, (command, result)
        assert "curate run" in result.stderr and "--run-dir run" in result.stderr
        assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(RunDirError, match="is damaged"):
        write_report(finished)
    repaired = curate_main("run", "spec.yaml", "--quiet")
    assert repaired.code == 0, repaired
    assert curate_main("inspect", "run").code == 0


def make_folder(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        import shutil

        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    path.mkdir(parents=True)
    (path / "inside").write_text("x")


def make_file(path: Path) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    path.write_text("x")


def make_fifo(path: Path) -> None:
    make_file(path)
    path.unlink()
    os.mkfifo(path)


def make_link(path: Path) -> None:
    """A symbolic link to a file of the user's, users_own.txt in the working directory."""
    make_file(path)
    path.unlink()
    path.symlink_to(Path.cwd() / "users_own.txt")


def make_folder_link(path: Path) -> None:
    """A symbolic link to a folder of the user's, users_folder in the working directory, holding
    a file named as curate names a step's link."""
    folder = Path.cwd() / "users_folder"
    folder.mkdir(exist_ok=True)
    (folder / "01_chapter.txt").write_text("the user's own chapter")
    make_file(path)
    path.unlink()
    path.symlink_to(folder)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (links not followed): its kind, size, times and, for a file, its
    bytes or, for a link, its target. What `curate validate` must leave as it found it."""
    found: dict[str, tuple] = {}
    for folder, folders, files in os.walk(root):
        for name in [*folders, *files, *([""] if folder == str(root) else [])]:
            path = Path(folder) / name
            info = path.lstat()
            content = (os.readlink(path) if path.is_symlink()
                       else path.read_bytes() if stat.S_ISREG(info.st_mode) else None)
            found[str(path)] = (info.st_mode, info.st_size, info.st_mtime_ns, info.st_ino, content)
    return found


@contextlib.contextmanager
def no_endless_wait(seconds: int = 30) -> Iterator[None]:
    """Fail, rather than hang the suite, where a command waits forever: opening a pipe waits for
    its other end (what `curate run` did with a pipe in place of spec.yaml)."""
    def give_up(signum, frame):
        raise TimeoutError(f"still waiting after {seconds} s")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize(("where", "make", "kind"), [
    (".curate.lock", make_folder, "is a folder"), ("store/.curate.lock", make_folder, "is a folder"),
    ("manifest.json", make_folder, "is a folder"), ("curate.duckdb", make_folder, "is a folder"),
    ("spec.yaml", make_folder, "is a folder"), ("steps/01_normalize_text", make_folder, "is a folder"),
    ("store", make_file, "is a file"), ("steps", make_file, "is a file"), ("tmp", make_file, "is a file"),
    ("store/<fp>", make_file, "is a file"),
    # a pipe made the run wait forever for a reader; a link had it write into the user's file
    ("spec.yaml", make_fifo, "is a pipe (FIFO)"), ("manifest.json", make_fifo, "is a pipe (FIFO)"),
    (".curate.lock", make_fifo, "is a pipe (FIFO)"), ("steps/01_normalize_text", make_fifo, "is a pipe (FIFO)"),
    ("store", make_fifo, "is a pipe (FIFO)"),
    (".curate.lock", make_link, "is a symbolic link"), ("spec.yaml", make_link, "is a symbolic link"),
    ("store/.curate.lock", make_link, "is a symbolic link"),
    ("store/<fp>", make_link, "is a symbolic link to {cwd}/users_own.txt"),
    # a run replaces the NN_* entries of steps/: through a link, a folder of the user's lost its NN_* files
    ("steps", make_folder_link, "is a symbolic link"),
])
def test_a_run_dir_entry_of_the_wrong_kind_is_a_clear_error(curate_main, finished, where, make, kind):
    if where == "store/<fp>":
        fingerprint = json.loads((finished / "manifest.json").read_text())["steps"][2]["fingerprint"]
        where = f"store/{fingerprint}"
    kind = kind.format(cwd=Path.cwd())
    users_own = Path.cwd() / "users_own.txt"  # the workdir, where curate_main runs
    users_own.write_text("the user's own words")
    make(finished / where)
    before = snapshot(finished)
    with no_endless_wait():
        checked = curate_main("validate", "spec.yaml")
        assert snapshot(finished) == before  # validation looks, never writes
        ran = curate_main("run", "spec.yaml", "--quiet")
    for result in (checked, ran):
        assert result.code == 2, result
        assert f"{finished / where} {kind}, where curate keeps" in result.stderr, result
        assert "remove it" in result.stderr and "internal error" not in result.stderr
    assert checked.stderr == ran.stderr  # one check, one message
    assert users_own.read_text() == "the user's own words"
    if make is make_folder_link:
        assert [p.name for p in (Path.cwd() / "users_folder").iterdir()] == ["01_chapter.txt"]


def test_a_store_linked_to_a_folder_elsewhere_is_refused_and_cache_dir_keeps_it_there(curate_main, finished):
    """A link at store/ had a run write and delete in the folder it leads to (a run directory sent
    by someone else could lead anywhere): the spec names a store kept elsewhere, run.cache_dir, and
    the message says so with that folder; the steps stored there are reused."""
    elsewhere = finished.parent / "store_elsewhere"
    (finished / "store").rename(elsewhere)
    (finished / "store").symlink_to(elsewhere)
    checked = curate_main("validate", "spec.yaml")
    ran = curate_main("run", "spec.yaml", "--quiet")
    for result in (checked, ran):
        assert result.code == 2, result
        assert f"{finished / 'store'} is a symbolic link to {elsewhere}" in result.stderr
        assert f"rm '{finished / 'store'}'" in result.stderr and f"cache_dir: '{elsewhere}'" in result.stderr
    assert checked.stderr == ran.stderr
    (finished / "store").unlink()  # the fix it gives
    spec = yaml.safe_load(Path("spec.yaml").read_text())
    spec["run"]["cache_dir"] = str(elsewhere)
    Path("spec.yaml").write_text(yaml.safe_dump(spec))
    ran = curate_main("run", "spec.yaml", "--quiet")
    assert ran.code == 0, ran
    assert all(r["cached"] for r in json.loads((finished / "manifest.json").read_text())["steps"])


def test_validate_leaves_a_missing_run_dir_missing(curate_main, write_spec, workdir):
    write_spec(spec_with(run={"dir": "run"}), table=sample_table(20))
    assert curate_main("validate", "spec.yaml").code == 0
    assert not (workdir / "run").exists()


def test_a_lock_file_that_is_a_folder_is_named(tmp_path):
    from curate.errors import RunDirError
    from curate.lock import DirectoryLock

    (tmp_path / ".curate.lock").mkdir()
    with pytest.raises(RunDirError, match=r"lock file .*\.curate\.lock of the run directory is a folder"):
        DirectoryLock(tmp_path, "run directory").acquire()
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="a folder above it, is a file"):
        DirectoryLock(tmp_path / "file" / "below", "store").acquire()


@pytest.mark.parametrize(("run", "message"), [
    ({"dir": "runs/{nope}"}, "run.dir: unknown placeholder {nope} in 'runs/{nope}'; known: {name}"),
    ({"dir": "runs/{name"}, "run.dir: unmatched brace in 'runs/{name'"),
    ({"shard_size": True}, "run.shard_size: input should be a valid integer, got true"),
    ({"shard_size": 2.0}, "run.shard_size: input should be a valid integer, got 2.0"),
    ({"seed": "3"}, "run.seed: input should be a valid integer, got '3'"),
])
def test_run_settings_that_mean_nothing_are_refused(curate_main, write_spec, workdir, run, message):
    result = validate_outputs(curate_main, write_spec, [], run=run)
    assert result.code == 2, result
    assert message in result.stderr and "spec.yaml:" in result.stderr
    assert not (workdir / "runs").exists()


def test_version_true_is_no_version(curate_main, write_spec):
    write_spec({**spec_with(), "version": True}, table=sample_table(20))
    result = curate_main("validate", "spec.yaml")
    assert result.code == 2 and "version: input should be a valid integer, got true" in result.stderr, result


# Curate's own small files read back (curate.runfiles): a pipe or a device where one was made
# inspect, report, plan and resume wait forever, or read without end.
def test_a_pipe_as_the_manifest_is_named_by_every_command_that_reads_it(curate_main, finished):
    from curate_report.page import write_report  # `curate report RUN_DIR`

    from curate.errors import RunDirError

    make_fifo(finished / "manifest.json")
    with no_endless_wait():
        for command in (["inspect", "run"], ["run", "--resume", "run", "--quiet"]):
            result = curate_main(*command)
            assert result.code == 2, (command, result)
            assert "manifest.json" in result.stderr and "pipe (FIFO)" in result.stderr, (command, result)
            assert "internal error" not in result.stderr
        with pytest.raises(RunDirError, match=r"pipe \(FIFO\)"):
            write_report(finished)


@pytest.mark.parametrize("step", [2, 3])  # a fused group's last step (filter), a table step (exact_dedup)
def test_a_pipe_as_a_marker_has_its_step_recomputed_not_waited_for(curate_main, finished, step):
    from curate.runstore import StoreWarning

    output = (finished / "out.parquet").read_bytes()
    fingerprint = json.loads((finished / "manifest.json").read_text())["steps"][step]["fingerprint"]
    make_fifo(finished / "store" / fingerprint / "_COMPLETE.json")
    with no_endless_wait():
        planned = curate_main("plan", "spec.yaml")
        with pytest.warns(StoreWarning, match=r"pipe \(FIFO\), not the file curate wrote there"):
            ran = curate_main("run", "spec.yaml", "--quiet")
    assert planned.code == 0, planned
    assert ran.code == 0, ran
    assert (finished / "out.parquet").read_bytes() == output


def test_curate_reads_its_own_files_only_when_they_are_regular_and_small(tmp_path):
    from curate.runfiles import read_bytes, read_json

    path = tmp_path / "marker.json"
    path.write_text('{"rows_out": 3}')
    assert read_json(path) == {"rows_out": 3}
    with pytest.raises(OSError, match="larger than any file curate writes there"):
        read_bytes(path, limit=4)
    with pytest.raises(OSError, match="is a folder"):
        read_bytes(tmp_path)
    (tmp_path / "zero").symlink_to("/dev/zero")  # never ends
    with pytest.raises(OSError, match="is a character device, not the file curate wrote there"):
        read_bytes(tmp_path / "zero")
    os.mkfifo(tmp_path / "pipe")
    with no_endless_wait(), pytest.raises(OSError, match=r"is a pipe \(FIFO\)"):
        read_bytes(tmp_path / "pipe")


def test_the_program_shows_curates_own_warnings_on_one_line(finished):
    import subprocess
    import sys

    fingerprint = json.loads((finished / "manifest.json").read_text())["steps"][-1]["fingerprint"]
    make_fifo(finished / "store" / fingerprint / "_COMPLETE.json")
    ran = subprocess.run([sys.executable, "-m", "curate", "run", "spec.yaml", "--quiet"], cwd=finished.parent,
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    said = [line for line in ran.stderr.splitlines() if "recomputed" in line]
    assert len(said) == 1 and said[0].startswith("curate: warning: step 'exact_dedup' is recomputed: "), ran.stderr
    assert "StoreWarning" not in ran.stderr and "engine.py" not in ran.stderr
