"""``curate.run`` through the world and the download step (a loopback image server, img2dataset's
processes): the tables the Python API returns are the run's outputs and views, and its funnel is
``curate inspect --json``'s."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import curate
from curate.runstore import funnel
from tests.conftest import builtin_plugins
from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)

SPEC = {
    "name": "py_world",
    "source": {"format": "world", "params": {"n": 24, "seed": 3, "dir": "world", "port": 0, "eval_n": 0,
                                              "fault_rate": 0.25, "fault_weights": {"404": 1, "not_image": 1}}},
    "steps": [{"step": "download", "params": {"image_size": 32, "timeout": 20, "allowed_hosts": ["127.0.0.1"],
                                             "drop_failed": True}},
              {"step": "normalize_text"},
              {"step": "filter", "params": {"where": "length(alt_text) >= 3", "reason": "too_short"}}],
    "outputs": [{"format": "parquet", "path": "curated.parquet"}],
    "run": {"dir": "run", "report": False},
}


@pytest.fixture
def pm():  # the plugins this spec needs (tests/conftest.py's pm has basics only)
    return builtin_plugins("basics", "world", "download")


@pytest.mark.slow
@pytest.mark.network
def test_a_downloaded_world_reads_back_as_the_run_wrote_it(pm, workdir, monkeypatch, curate_main):
    import curate.plugins

    monkeypatch.setattr(curate.plugins, "_default", pm)
    monkeypatch.chdir(workdir)
    run = curate.run(SPEC)
    assert run.status == "complete" and run.run_dir == workdir / "run"
    download = run.steps[1]
    assert download.rows_in == 24 and sum(download.dropped.values()) > 0 and download.summary
    final = run.final().collect()
    assert final["image"].struct.field("key").null_count() == 0
    assert_frame_equal(final, pl.read_parquet(Path(run.outputs[0].path)))
    con = duckdb.connect(str(workdir / "run" / "curate.duckdb"), read_only=True)
    assert_frame_equal(final, con.sql("SELECT * FROM final").pl())
    assert_frame_equal(run.table("download", dropped=True).collect(), con.sql('SELECT * FROM "01_download_dropped"').pl())
    failed = run.table("download", dropped=True).select("uid", "_drop_reason").collect().row(0)
    assert [(d.step, d.reason) for d in run.lineage(failed[0])] == [("download", failed[1])]
    inspected = curate_main("inspect", "run", "--json").json()
    assert run.funnel() == funnel(inspected) and run.inspect()["state"] == inspected["state"] == "complete"
