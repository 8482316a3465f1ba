"""Outputs never fill the disk: a sink stops within a few kB of ``run.min_free_disk`` while it
writes (not only before it starts), leaves nothing of the output, and says which output and disk.

The disk is a fake one (``curate.diskspace.free_bytes`` answers capacity minus the bytes under
the output's folder), so the tests do not depend on what else the machine is writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

import curate.diskspace
from curate.diskspace import DiskNearlyFull, GuardedFile, SpaceGuard
from curate.sink import SinkContext
from curate.step import TableInput
from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)

MB = 10**6
# incompressible text, so the outputs are about as big as their bytes: ~7.2 MB of Parquet
TABLE = pl.DataFrame({"uid": [f"{i:016x}" for i in range(40_000)],
                      "url": [f"https://example.com/{i}.jpg" for i in range(40_000)],
                      "alt_text": [np.random.default_rng(i).bytes(90).hex() for i in range(40_000)]})


class FakeDisk:
    """``capacity`` bytes, of which the files under ``root`` use what they hold."""

    def __init__(self, root: Path, capacity: int):
        self.root, self.capacity = root, capacity
        self.lowest = capacity

    def used(self) -> int:
        return sum(f.stat().st_size for f in self.root.rglob("*") if f.is_file())

    def free(self, path: Path) -> int:
        free = self.capacity - self.used()
        self.lowest = min(self.lowest, free)
        return free


def write(fmt: str, tmp_path: Path, minimum: int) -> tuple[dict, Path]:
    from curate_basics.sinks import CsvSink, JsonlSink, ParquetSink, UidListSink

    sink_cls = {"parquet": ParquetSink, "jsonl": JsonlSink, "csv": CsvSink, "uids": UidListSink}[fmt]
    source = tmp_path / "input.parquet"
    if not source.exists():
        tmp_path.mkdir(parents=True, exist_ok=True)
        TABLE.write_parquet(source)
    ctx = SinkContext(run_dir=tmp_path / "run", spec_dir=tmp_path, seed=0, label="out",
                      path=f"out/data.{fmt}", min_free_disk=minimum)
    return sink_cls(sink_cls.Params(), ctx).write(TableInput([source], dict(TABLE.schema))) or {}, ctx.output_path


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv"])
def test_a_file_sink_stops_at_min_free_disk_while_writing_and_leaves_nothing(fmt, tmp_path, monkeypatch):
    out = tmp_path / "run" / "out"
    out.mkdir(parents=True)
    _, room = write(fmt, tmp_path / "room", 0)
    size = room.stat().st_size
    disk = FakeDisk(out, capacity=size // 2 + 2 * MB)  # half the output fits above the 2 MB line
    monkeypatch.setattr(curate.diskspace, "free_bytes", disk.free)
    with pytest.raises(DiskNearlyFull) as raised:
        write(fmt, tmp_path, minimum=2 * MB)
    message = str(raised.value)
    assert f"curate stopped writing output 'out/data.{fmt}' after " in message
    assert "run.min_free_disk (2.0 MB)" in message and str(out / f"data.{fmt}") in message
    assert "where output 'out/data." in raised.value.hint
    assert list(out.iterdir()) == []  # nothing of it: not the file, not its temporary
    assert disk.lowest > 2 * MB - 5 * 10**5  # stopped within half a MB of the line, never past it alone


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv", "uids"])
def test_a_guarded_output_with_room_is_the_same_bytes(fmt, tmp_path, monkeypatch):
    _, unguarded = write(fmt, tmp_path / "a", 0)
    (tmp_path / "b" / "run" / "out").mkdir(parents=True)
    disk = FakeDisk(tmp_path / "b" / "run" / "out", capacity=unguarded.stat().st_size + 3 * MB)
    monkeypatch.setattr(curate.diskspace, "free_bytes", disk.free)
    facts, guarded = write(fmt, tmp_path / "b", minimum=2 * MB)
    assert guarded.read_bytes() == unguarded.read_bytes()
    assert fmt == "uids" or facts["rows"] == TABLE.height


def test_a_run_whose_output_does_not_fit_stops_and_a_rerun_with_room_writes_it(curate_main, write_spec,
                                                                                 workdir, monkeypatch):
    exports = workdir / "exports"
    spec = {"name": "fit", "source": {"path": "data.parquet"}, "steps": [{"step": "normalize_text"}],
            "outputs": [{"format": "parquet", "path": str(exports / "final.parquet")}],
            "run": {"dir": "run", "report": False, "min_free_disk": "2MB"}}
    write_spec(spec, table=TABLE)
    assert curate_main("run", "spec.yaml", "--quiet", "--run-dir", "clean").code == 0
    clean = (exports / "final.parquet").read_bytes()
    (exports / "final.parquet").unlink()
    disk = FakeDisk(exports, capacity=len(clean) // 2 + 2 * MB)
    monkeypatch.setattr(curate.diskspace, "free_bytes", disk.free)
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 1, result
    assert f"curate stopped writing output '{exports / 'final.parquet'}' after" in result.stderr
    assert "Traceback" not in result.stderr and list(exports.iterdir()) == []
    disk.capacity = 10**12
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    assert (exports / "final.parquet").read_bytes() == clean


def test_a_disk_that_fills_under_an_output_names_the_output(curate_main, write_spec, workdir, monkeypatch):
    """min_free_disk 0 (or another program filling the disk): the writer's ENOSPC, wrapped by Polars,
    is said as the output's disk being full, with the fix, not as an internal error."""
    from curate_basics.sinks import ParquetSink

    def full(self, table):
        raise pl.exceptions.ComputeError("parquet: underlying IO error: No space left on device (os error 28)")

    monkeypatch.setattr(ParquetSink, "write", full)
    write_spec({"name": "enospc", "source": {"path": "data.parquet"}, "steps": [],
                "outputs": [{"format": "parquet", "path": "final.parquet"}],
                "run": {"dir": "run", "report": False, "min_free_disk": "0"}}, table=TABLE.head(10))
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 1, result
    assert "output 'final.parquet' could not be written, the disk holding" in result.stderr
    assert "is full (parquet: underlying IO error: No space left on device" in result.stderr
    assert "where output 'final.parquet' goes" in result.stderr and "Traceback" not in result.stderr


@given(writes=st.lists(st.integers(0, 3 * MB), max_size=60), capacity=st.integers(0, 40 * MB),
       minimum=st.integers(0, 8 * MB), every=st.sampled_from([1, 4096, 4 * 2**20]))
def test_a_guard_never_lets_a_write_take_the_disk_under_its_minimum(writes, capacity, minimum, every):
    """Whatever the writes' sizes: each one is made only if the disk keeps more than ``minimum``
    free after it; with ``minimum`` 0 nothing is checked; a write that fits is never refused."""
    used = 0
    guard = SpaceGuard(Path("/nowhere"), minimum, "writing", every=every)
    original = curate.diskspace.free_bytes
    curate.diskspace.free_bytes = lambda path: capacity - used
    try:
        for count in writes:
            try:
                guard.wrote(count)
            except DiskNearlyFull:
                assert minimum > 0 and capacity - used - count <= minimum  # refused only when it would not fit
                assert guard.error is not None
                break
            used += count
            assert minimum == 0 or count == 0 or capacity - used > minimum  # writing nothing takes nothing
    finally:
        curate.diskspace.free_bytes = original
    assert guard.written == used


def test_a_guarded_file_is_a_binary_file_polars_writes_to(tmp_path):
    guard = SpaceGuard(tmp_path, 0, "writing")
    with GuardedFile(tmp_path / "a.parquet", guard) as handle:
        TABLE.head(100).write_parquet(handle)
    assert pl.read_parquet(tmp_path / "a.parquet").equals(TABLE.head(100))
    assert guard.written == (tmp_path / "a.parquet").stat().st_size
