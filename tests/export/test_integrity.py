"""Exports are whole or absent, and never delete files curate did not write."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import polars as pl
import pytest
from curate_export.sinks import ImageFolderSink, WebDatasetSink

from curate.sink import SinkContext
from curate.step import TableInput
from tests.conftest import REPO, cli_env
from tests.export.conftest import make_store

# Their tables have a row without an image, which every export warns of (tests/export/test_sinks.py).
pytestmark = pytest.mark.filterwarnings("ignore::curate_export.sinks.ExportWarning")


def write(sink_cls, table: pl.DataFrame, tmp_path: Path, store: Path, path: str = "export", **params):
    source = tmp_path / "input.parquet"
    table.write_parquet(source)
    ctx = SinkContext(run_dir=tmp_path / "run", spec_dir=tmp_path, seed=0, label="out", path=path)
    sink = sink_cls(sink_cls.Params(store_dir=str(store), **params), ctx)
    return sink.write(TableInput([source], dict(table.schema))), ctx.output_path


@pytest.mark.parametrize("sink_cls", [WebDatasetSink, ImageFolderSink])
def test_a_folder_holding_the_users_files_is_refused_and_left_alone(store_table, tmp_path, sink_cls):
    from curate.errors import OutputError

    store, table = store_table
    out = tmp_path / "run" / "export"
    out.mkdir(parents=True)
    (out / "00000.tar").write_bytes(b"the user's own shard")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError) as caught:
        write(sink_cls, table, tmp_path, store, samples_per_shard=10) if sink_cls is WebDatasetSink \
            else write(sink_cls, table, tmp_path, store)
    message = str(caught.value)
    assert caught.value.exit_code == 2
    assert str(out) in message and "00000.tar" in message and "notes.txt" in message
    assert (out / "00000.tar").read_bytes() == b"the user's own shard"
    assert sorted(p.name for p in out.iterdir()) == ["00000.tar", "notes.txt"]
    assert not list(out.parent.glob(".export*"))


def test_a_rerun_replaces_only_the_files_it_wrote(store_table, tmp_path):
    store, table = store_table
    facts, out = write(WebDatasetSink, table, tmp_path, store, samples_per_shard=10)
    assert facts["shards"] == 3
    (out / "README.md").write_text("the user's notes, added later")
    write(WebDatasetSink, table, tmp_path, store, samples_per_shard=20)
    assert sorted(p.name for p in out.iterdir()) == ["00000.tar", "00001.tar", "README.md", "_CURATE_EXPORT.json",
                                                     "sizes.json"]
    listing = json.loads((out / "_CURATE_EXPORT.json").read_text())
    assert listing["complete"] and listing["files"] == ["00000.tar", "00001.tar", "sizes.json"]
    assert (out / "README.md").read_text() == "the user's notes, added later"


def test_an_empty_existing_folder_is_used(store_table, tmp_path):
    store, table = store_table
    (tmp_path / "run" / "export").mkdir(parents=True)
    facts, out = write(WebDatasetSink, table, tmp_path, store, samples_per_shard=10)
    assert sorted(json.loads((out / "sizes.json").read_text())) == ["00000.tar", "00001.tar", "00002.tar"]


def test_a_failing_export_leaves_no_output_behind(store_table, tmp_path):
    store, table = store_table
    broken = table.with_columns(
        pl.when(pl.col("uid") == "0000000000000014")
        .then(pl.struct(shard=pl.lit("missing.tar"), key=pl.col("uid")))
        .otherwise(pl.col("image")).alias("image"))
    with pytest.raises(Exception):  # noqa: B017 - whatever the image reader raises for a missing store file
        write(WebDatasetSink, broken, tmp_path, store, samples_per_shard=5)
    assert not (tmp_path / "run" / "export").exists()
    assert not list((tmp_path / "run").glob(".export*"))


KILLED_EXPORT = '''
import sys, time
from pathlib import Path
import polars as pl
import curate_export.sinks as sinks
import curate_export.tars as tars
from curate.sink import SinkContext
from curate.step import TableInput


tmp = Path(sys.argv[1])
real_add = tars._add
def slow_add(tar, name, data):  # as slow as a big export, so the kill lands in the middle of a tar
    real_add(tar, name, data)
    time.sleep(0.02)
tars._add = slow_add
table = pl.read_parquet(tmp / "input.parquet")
ctx = SinkContext(run_dir=tmp / "run", spec_dir=tmp, seed=0, label="out", path="export")
sink = sinks.WebDatasetSink(sinks.WebDatasetSink.Params(store_dir=str(tmp / "store"), samples_per_shard=10), ctx)
sink.write(TableInput([tmp / "input.parquet"], dict(table.schema)))
'''


def test_a_webdataset_export_killed_mid_tar_is_absent_and_a_rerun_is_byte_identical(tmp_path):
    table = make_store(tmp_path / "store", 40)
    table.write_parquet(tmp_path / "input.parquet")
    script = tmp_path / "export.py"
    script.write_text(KILLED_EXPORT)
    env = cli_env([REPO, REPO / "plugins"])
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env)
    partial = tmp_path / "run" / ".export.curate-partial"
    deadline = time.monotonic() + 60
    while not (partial / "00001.tar").exists():  # the first tar is done, the second is being written
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    out = tmp_path / "run" / "export"
    assert not out.exists()  # absent, not a truncated tar that `tar tf` reads without complaint

    done = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, timeout=120, check=False)
    assert done.returncode == 0
    assert not partial.exists()
    clean = tmp_path / "clean"
    clean.mkdir()
    table.write_parquet(clean / "input.parquet")
    (clean / "store").symlink_to(tmp_path / "store")
    subprocess.run([sys.executable, str(script), str(clean)], env=env, timeout=120, check=True)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in (clean / "run" / "export").iterdir())
    assert [(out / n).read_bytes() for n in names] == [(clean / "run" / "export" / n).read_bytes() for n in names]
    for name in names:
        if name.endswith(".tar"):
            with tarfile.open(out / name) as tar:
                assert len(tar.getmembers()) == 30  # 10 samples of jpg + txt + json


def test_a_run_exporting_into_the_users_folder_stops_before_its_first_step(pm, tmp_path, store_table):
    import curate_export

    from curate.errors import OutputError
    from curate.testing import run_spec

    pm.register(curate_export, name="export", distribution="curate", version=curate_export.__version__)
    store, table = store_table
    table = table.with_columns(pl.format("https://example.com/{}.jpg", pl.col("uid")).alias("url"))
    mine = tmp_path / "shards"
    mine.mkdir()
    (mine / "00000.tar").write_bytes(b"the user's own shard")
    spec = {"name": "export", "source": {"path": "data.parquet"}, "steps": [{"step": "normalize_text"}],
            "outputs": [{"format": "webdataset", "path": str(mine), "params": {"store_dir": str(store)}}]}
    with pytest.raises(OutputError) as caught:
        run_spec(spec, tmp_path / "work", tables={"data.parquet": table}, pm=pm)
    assert caught.value.exit_code == 2 and str(mine) in str(caught.value) and "00000.tar" in str(caught.value)
    assert (mine / "00000.tar").read_bytes() == b"the user's own shard"
    assert not (tmp_path / "work" / "run" / "manifest.json").exists()  # no step ran


def test_a_cached_rerun_leaves_every_exported_file_as_it_was_and_a_change_rewrites_only_what_changed(
        pm, tmp_path, store_table):
    """An export re-run with the same rows replaced every tar with the same bytes and a new mtime:
    `make` rebuilt what depends on them, `rsync -a` sent them again (as for file outputs, whose
    keep_same the export folder now shares). Shards a smaller export no longer has are removed."""
    import os

    import curate_export

    from curate.testing import run_spec

    pm.register(curate_export, name="export", distribution="curate", version=curate_export.__version__)
    store, table = store_table
    table = table.with_columns(pl.format("https://example.com/{}.jpg", pl.col("uid")).alias("url"))

    def export(where: str) -> dict:
        spec = {"name": "export", "source": {"path": "data.parquet"},
                "steps": [{"step": "filter", "params": {"where": where}}],
                "outputs": [{"format": "webdataset", "path": "shards",
                             "params": {"store_dir": str(store), "samples_per_shard": 5}}]}
        first = not (tmp_path / "work" / "data.parquet").exists()
        return run_spec(spec, tmp_path / "work", tables={"data.parquet": table} if first else None, pm=pm)

    out = tmp_path / "work" / "run" / "shards"
    assert export("uid IS NOT NULL")["outputs"][0]["shards"] == 5  # 24 images: 5 + 5 + 5 + 5 + 4
    old = 1_000_000_000
    for path in out.iterdir():
        os.utime(path, ns=(old, old))
    assert all(record["cached"] for record in export("uid IS NOT NULL")["steps"])
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == \
        dict.fromkeys(["00000.tar", "00001.tar", "00002.tar", "00003.tar", "00004.tar", "_CURATE_EXPORT.json",
                       "sizes.json"], old)
    assert not list(out.parent.glob(".shards*"))

    # The first 12 rows: the first two shards are the same, the third shorter, the last two gone.
    export("uid < '000000000000000c'")
    assert {p.name: p.stat().st_mtime_ns == old for p in out.iterdir()} == {
        "00000.tar": True, "00001.tar": True, "00002.tar": False, "_CURATE_EXPORT.json": False,
        "sizes.json": False}
    assert json.loads((out / "sizes.json").read_text()) == {"00000.tar": 5, "00001.tar": 5, "00002.tar": 2}
    listing = json.loads((out / "_CURATE_EXPORT.json").read_text())
    assert listing["complete"] and listing["files"] == ["00000.tar", "00001.tar", "00002.tar", "sizes.json"]
    with tarfile.open(out / "00002.tar") as tar:
        assert len(tar.getmembers()) == 6
