"""WebDataset and imagefolder exports stop at ``run.min_free_disk`` while they write (sample by
sample), leave no partial export behind, and write the same bytes when there is room.

The disk is a fake one (``curate.diskspace.free_bytes`` answers capacity minus the bytes under
the export's parent folder), so the tests do not depend on what else the machine writes."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from curate_export.sinks import ImageFolderSink, WebDatasetSink

import curate.diskspace
from curate.diskspace import DiskNearlyFull
from curate.sink import SinkContext
from curate.step import TableInput
from tests.export.conftest import make_store

# Their tables have a row without an image, which every export warns of (tests/export/test_sinks.py).
pytestmark = pytest.mark.filterwarnings("ignore::curate_export.sinks.ExportWarning")

KB = 1000


def used(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


def export(sink_cls, table: pl.DataFrame, tmp_path: Path, store: Path, minimum: int) -> Path:
    (tmp_path / "run" / "out").mkdir(parents=True, exist_ok=True)
    source = tmp_path / "input.parquet"
    table.write_parquet(source)
    ctx = SinkContext(run_dir=tmp_path / "run", spec_dir=tmp_path, seed=0, label="out", path="out/export",
                      min_free_disk=minimum)
    sink_cls(sink_cls.Params(store_dir=str(store), samples_per_shard=20) if sink_cls is WebDatasetSink
             else sink_cls.Params(store_dir=str(store)), ctx).write(TableInput([source], dict(table.schema)))
    return ctx.output_path


@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("sink_cls", [WebDatasetSink, ImageFolderSink])
def test_an_export_stops_at_min_free_disk_while_writing_and_leaves_nothing(sink_cls, tmp_path, monkeypatch):
    store = tmp_path / "store"
    table = make_store(store, 120)
    room = export(sink_cls, table, tmp_path / "room", store, 0)
    size = used(room)
    out = tmp_path / "full" / "run" / "out"
    lowest = []

    def free(path: Path) -> int:
        lowest.append(size // 2 + 20 * KB - used(out))
        return lowest[-1]

    monkeypatch.setattr(curate.diskspace, "free_bytes", free)
    with pytest.raises(DiskNearlyFull, match=r"curate stopped writing output 'out/export' after"):
        export(sink_cls, table, tmp_path / "full", store, 20 * KB)
    assert list(out.iterdir()) == []  # no export, no partial folder
    assert min(lowest) > 0  # the guard looked before the line was crossed

    monkeypatch.setattr(curate.diskspace, "free_bytes", lambda path: 10**12)
    again = export(sink_cls, table, tmp_path / "full", store, 20 * KB)
    assert sorted(p.relative_to(again).as_posix() for p in again.rglob("*") if p.is_file()) == \
        sorted(p.relative_to(room).as_posix() for p in room.rglob("*") if p.is_file())
    for name in (p.relative_to(room) for p in room.rglob("*") if p.is_file() and p.name != "_CURATE_EXPORT.json"):
        assert (again / name).read_bytes() == (room / name).read_bytes(), name
