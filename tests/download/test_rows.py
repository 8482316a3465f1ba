"""Every row leaves the download step with a status and, unless it succeeded, a reason."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from curate_download import store
from curate_download.step import Download, DownloadParams

from curate.step import StepContext
from tests.download.conftest import run_download
from tests.download.hostile import serve_hostile

pytestmark = pytest.mark.network


def test_rows_without_a_url_get_missing_url(tmp_path: Path) -> None:
    table = pl.DataFrame({"url": [None, "", "   ", "http://127.0.0.1:9/a.png"], "alt_text": list("abcd")},
                         schema={"url": pl.Utf8, "alt_text": pl.Utf8})
    _, rows = run_download(tmp_path, table, {"timeout": 1})
    assert rows["status"].to_list() == ["missing_url"] * 3 + ["refused"]
    assert all("no URL" in message for message in rows["error_message"][:3])


def test_a_url_column_of_nulls_only(tmp_path: Path) -> None:
    """A source whose url column holds nothing but nulls comes typed Null; the step used to fail on it."""
    table = pl.DataFrame({"url": pl.Series([None] * 334, dtype=pl.Null), "alt_text": [f"t{i}" for i in range(334)]})
    _, rows = run_download(tmp_path, table, {"timeout": 1})
    assert rows.height == 334 and set(rows["status"]) == {"missing_url"}
    assert rows["error_message"].null_count() == 0


def test_a_row_img2dataset_lost_still_gets_a_status(tmp_path: Path) -> None:
    """img2dataset skips a row whose processing raised (it prints and moves on). Simulate that
    with a finished part missing one row: the re-run reads the part back, and the lost row gets
    failed_to_download with a reason instead of no status at all."""
    params = {"allow_private_networks": True, "timeout": 3, "image_size": 32}
    with serve_hostile() as host:
        table = pl.DataFrame({"url": [f"{host.base_url}/ok/n{i}.png" for i in range(5)], "alt_text": list("abcde")})
        manifest, rows = run_download(tmp_path, table, params)
    assert set(rows["status"]) == {"success"}
    step_dir = Path(next(r for r in manifest["steps"] if r["label"] == "download")["path"])
    shard_dir = step_dir / "artifacts" / "shard-00000"
    lost = rows["uid"][2]
    results = pl.read_parquet(store.results_path(shard_dir, 0))
    results.filter(pl.col("uid") != lost).write_parquet(store.results_path(shard_dir, 0))
    # the shard again, as the engine runs it after a crash; img2dataset has nothing left to do
    step = Download(DownloadParams(**params))
    ctx = StepContext(run_dir=tmp_path, label="download", seed=0, artifacts=step_dir / "artifacts", shard=0,
                      extras={"step_dir": str(step_dir), "store_dir": manifest["store_dir"]})
    again = step.process_shard(rows.select("uid", "url", "alt_text"), ctx)
    assert again.height == 5 and again["status"].null_count() == 0
    row = again.filter(pl.col("uid") == lost)
    assert row["status"].to_list() == ["failed_to_download"]
    assert "img2dataset reported nothing for this row" in row["error_message"][0]
