"""A full disk or a file-size limit wherever curate writes (its lock, manifest, views, report, a
step's shard, an output): one clear error saying what was written and how to fix it, never
"internal error … please report it", and nothing half-written left to be trusted or to litter.

The full-disk tests mount a small tmpfs (root only; skipped elsewhere); the file-size limit is
the process's own RLIMIT_FSIZE, lowered for the length of one run."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest

ROWS = 3000


def table() -> pl.DataFrame:
    """Text that does not compress: ~150 kB as Parquet."""
    rng = np.random.default_rng(0)
    return pl.DataFrame({"url": [f"http://x/{i}.jpg" for i in range(ROWS)],
                         "alt_text": [rng.bytes(24).hex() for _ in range(ROWS)]})


def spec(shard_size: int, **run: object) -> dict:
    return {"name": "room", "source": {"path": "data.parquet"}, "steps": [{"step": "normalize_text"}],
            "outputs": [{"format": "parquet", "path": "out.parquet"}],
            "run": {"dir": "run", "shard_size": shard_size, "min_free_disk": "0", **run}}


@contextlib.contextmanager
def file_size_limit(size: int) -> Iterator[None]:
    """``ulimit -f``: writing a file past ``size`` bytes fails with EFBIG (Python ignores SIGXFSZ)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_a_file_size_limit_on_a_steps_shard_says_so_and_a_rerun_resumes(curate_main, write_spec, workdir):
    write_spec(spec(shard_size=ROWS), table=table())
    with file_size_limit(64 * 1024):
        result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 1 and "internal error" not in result.stderr, result
    assert "step 'source'" in result.stderr and "File too large" in result.stderr
    assert "ulimit -f allows files of 65.5 kB" in result.stderr and "run.shard_size" in result.stderr
    again = curate_main("run", "spec.yaml", "--quiet")
    assert again.code == 0, again
    assert pl.read_parquet(workdir / "run" / "out.parquet").height == ROWS


def test_a_file_size_limit_on_an_output_says_so_not_permissions(curate_main, write_spec, workdir):
    write_spec(spec(shard_size=250), table=table())  # each shard fits, the whole output does not
    with file_size_limit(64 * 1024):
        result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 1 and "internal error" not in result.stderr, result
    assert "output 'out.parquet' could not be written" in result.stderr and "File too large" in result.stderr
    assert "ulimit -f" in result.stderr and "permissions" not in result.stderr
    assert not (workdir / "run" / "out.parquet").exists()
    assert curate_main("run", "spec.yaml", "--quiet").code == 0


def test_a_full_disk_outside_a_run_is_classified_where_every_error_ends(curate_main, write_spec, monkeypatch):
    """The one place an unexpected error becomes "internal error" (curate.cli.main) tells a full
    disk, a used-up quota and a file-size limit from a bug, in an OSError or quoted by a library."""
    import errno

    import curate.runner

    write_spec(spec(shard_size=100), table=table().head(10))
    for error, words in [(OSError(errno.ENOSPC, "No space left on device", "/x/manifest.json"),
                          "could not write /x/manifest.json: No space left on device"),
                         (OSError(errno.EDQUOT, "Disk quota exceeded"), "quota -s"),
                         (RuntimeError('IO Error: Could not write file "/x/.curate.duckdb.7.tmp": File too large'),
                          "could not write /x/.curate.duckdb.7.tmp: File too large (RuntimeError: IO Error")]:
        def fail(*args, error=error, **kwargs):
            raise error

        monkeypatch.setattr(curate.runner, "load_and_plan", fail)
        result = curate_main("run", "spec.yaml", "--quiet")
        assert result.code == 1 and "internal error" not in result.stderr, result
        assert words in result.stderr, result.stderr


def test_stale_temporaries_of_the_views_are_swept(curate_main, write_spec, workdir):
    """A full disk failed DuckDB's checkpoint of the views' temporary and left its log (.tmp.wal);
    a later run removes those of processes that no longer run."""
    write_spec(spec(shard_size=1000), table=table().head(100))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [workdir / "run" / f".curate.duckdb.{dead.pid}.tmp", workdir / "run" / f".curate.duckdb.{dead.pid}.tmp.wal"]
    for path in stale:
        path.write_bytes(b"x" * 100)
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    assert not any(path.exists() for path in stale)


# -- a real full disk: a tmpfs of a few MB (root) ----------------------------------------------------

@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True,
                             text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path, leave: int) -> Path:
    """Fill ``disk`` but for about ``leave`` bytes."""
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        with contextlib.suppress(OSError):
            handle.write(b"\0" * max(free - leave, 0))
    return filler


def test_a_full_disk_under_a_finished_run_is_a_clear_error_and_the_run_is_intact(curate_main, write_spec,
                                                                                  small_disk):
    write_spec(spec(shard_size=1000, dir=str(small_disk / "run")), table=table().head(300))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    run = small_disk / "run"
    manifest = (run / "manifest.json").read_bytes()
    filler = fill(small_disk, 0)
    for command in (["spec.yaml"], ["--resume", str(run)], ["spec.yaml", "--from", "normalize_text"]):
        result = curate_main("run", *command, "--quiet")
        assert result.code == 1 and "internal error" not in result.stderr, result
        assert f"could not write {run / '.curate.lock'}: No space left on device" in result.stderr, result.stderr
        assert "(0 bytes free on its disk)" in result.stderr and "the disk is full" in result.stderr
    assert (run / "manifest.json").read_bytes() == manifest and not (run / ".curate.lock").exists()
    filler.unlink()
    assert curate_main("run", "--resume", str(run), "--quiet").code == 0
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"


def test_a_disk_too_full_for_the_views_leaves_no_log_behind(curate_main, write_spec, small_disk):
    write_spec(spec(shard_size=1000, dir=str(small_disk / "run")), table=table().head(300))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    run = small_disk / "run"
    filler = fill(small_disk, 40 * 1024)  # room for the manifest, not for a new curate.duckdb
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 1 and "internal error" not in result.stderr, result
    assert "No space left on device" in result.stderr and "the disk is full" in result.stderr
    assert f"could not write {run}/.curate.duckdb." in result.stderr, result.stderr  # DuckDB's checkpoint
    assert not list(run.glob(".curate.duckdb.*")), list(run.iterdir())
    assert f"curate relocate {run}" in result.stderr and not (run / "curate.duckdb").exists()
    filler.unlink()
    assert curate_main("run", "spec.yaml", "--quiet").code == 0


def test_views_that_cannot_be_written_are_not_left_from_the_run_before(curate_main, write_spec, workdir):
    """The views are written before the manifest says complete; where they cannot be (a full disk,
    here a file-size limit), the manifest says the steps are complete and the views not written,
    and the earlier run's curate.duckdb, which showed the other spec's steps, is gone."""
    import duckdb

    write_spec(spec(shard_size=1000), table=table().head(100))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    run = workdir / "run"
    steps = [{"step": "normalize_text"}, {"step": "filter", "params": {"where": "true"}}]
    other = {**spec(shard_size=1000), "steps": steps}
    write_spec(other)
    with file_size_limit(64 * 1024):  # the shards, the output and the manifest fit; DuckDB's file does not
        result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 1 and "internal error" not in result.stderr, result
    assert "its views could not be written" in result.stderr, result.stderr
    assert "File too large" in result.stderr
    assert f"curate relocate {run}" in result.stderr, result.stderr
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and all(record["complete"] for record in manifest["steps"])
    assert "File too large" in manifest["views_error"], manifest
    assert not (run / "curate.duckdb").exists() and not list(run.glob(".curate.duckdb.*"))
    inspected = curate_main("inspect", str(run))
    assert "views were not written" in inspected.stdout, inspected
    assert curate_main("relocate", str(run)).code == 0
    assert "views_error" not in json.loads((run / "manifest.json").read_text())
    with duckdb.connect(str(run / "curate.duckdb"), read_only=True) as con:
        views = {row[0] for row in con.sql("SELECT view_name FROM duckdb_views()").fetchall()}
    assert "02_filter" in views, views


def test_views_without_room_get_the_runs_fix_without_its_advice_on_the_run_directory(tmp_path):
    """The views' hint frees the room as a run's does, but speaks not of run.dir or the shard size:
    `curate relocate` writes the views where they are."""
    import errno

    from curate.errors import resource_hint
    from curate.views import views_failed

    for number in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        error = OSError(number, os.strerror(number), str(tmp_path / "curate.duckdb"))
        hint = views_failed(tmp_path, {}, error).hint
        fix, again = hint.split(", then ")
        assert resource_hint(error).startswith(f"{fix}, or "), (hint, resource_hint(error))
        assert "run." not in fix and again.startswith(f"`curate relocate {tmp_path}`"), hint
