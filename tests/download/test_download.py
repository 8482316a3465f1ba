"""The download step against the world's loopback server: every fault kind, statuses against the
ground truth, images stored once and read back by reference."""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from curate_download.step import FAILURES
from curate_world.generate import World

from curate.images import iter_images
from curate.testing.runner import read_step_output, run_spec
from tests.download.conftest import (
    HEALTHY,
    SLOW_SECONDS,
    TIMEOUT,
    counting_server,
    download_spec,
    run_download,
    url_table,
)

pytestmark = pytest.mark.network

STATUSES = {"success", *FAILURES}
ACCEPTANCE_PARAMS = {
    "allow_private_networks": True,
    "timeout": TIMEOUT,
    "retries": 1,  # a healthy URL that times out once on a loaded machine gets a second chance
    "max_image_area": 2000 * 2000,  # the world's "oversized" images are 4000x4000
    "image_size": 64,
    "resize_mode": "keep_ratio",
    # Every part waits out its slow URLs' timeouts (and their retry): two parts of the 300 rows,
    # one per process, wait side by side instead of three parts one after another.
    "samples_per_shard": 150,
    "processes": 2,
}


def check_against_ground_truth(world: World, rows: pl.DataFrame, record: dict[str, Any], store_dir: str) -> None:
    """What the acceptance criteria say, for a run over ``world``'s rows."""
    assert rows["status"].null_count() == 0
    assert set(rows["status"]) <= STATUSES
    healthy = rows.filter(pl.col("gt_fault").is_in(HEALTHY))
    succeeded = rows.filter(pl.col("status") == "success")
    assert sorted(succeeded["uid"]) == sorted(healthy["uid"]), (
        rows.filter((pl.col("status") == "success") != pl.col("gt_fault").is_in(HEALTHY))
        .select("gt_fault", "status", "error_message").head(10)
    )
    by_fault = dict(rows.group_by("gt_fault").agg(pl.col("status").unique().sort()).iter_rows())
    assert by_fault.get("noai", ["opted_out"]) == ["opted_out"]
    assert by_fault.get("slow", ["failed_to_download"]) == ["failed_to_download"]
    slow = rows.filter(pl.col("gt_fault") == "slow")
    assert all("timed out" in message for message in slow["error_message"])
    assert (rows["image"].is_null() == (rows["status"] != "success")).all()
    assert succeeded["error_message"].null_count() == succeeded.height
    assert (succeeded["image"].struct.field("key") == succeeded["uid"]).all()

    # images are stored once, under the step's own directory, and never for opted-out rows
    step_dir = Path(record["path"])
    members: list[str] = []
    for tar in sorted(step_dir.glob("artifacts/shard-*/*.tar")):
        with tarfile.open(tar) as archive:
            members += archive.getnames()
    assert sorted(members) == sorted(f"{uid}.jpg" for uid in succeeded["uid"])
    assert all(str(shard).startswith(step_dir.name + "/artifacts/") for shard in succeeded["image"].struct.field("shard"))

    # read back by reference: the pixels are the served image's, the hash the served bytes'
    for row, image in zip(succeeded.iter_rows(named=True), iter_images(succeeded["image"], store_dir), strict=True):
        assert image.size == (row["width"], row["height"])
        original = (world.dir / row["gt_image_path"]).read_bytes()
        assert row["sha256"] == hashlib.sha256(original).hexdigest()


@pytest.fixture(scope="module")
def faulty_run(faulty_world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict, pl.DataFrame]]:
    with counting_server(faulty_world) as server:
        table = url_table(faulty_world, server.base_url)
        manifest, rows = run_download(tmp_path_factory.mktemp("faulty-run"), table, ACCEPTANCE_PARAMS)
        yield manifest, rows


def test_statuses_match_the_world_ground_truth(faulty_world: World, faulty_run: tuple[dict, pl.DataFrame]) -> None:
    manifest, rows = faulty_run
    record = manifest["steps"][1]
    assert record["rows_in"] == record["rows_out"] == faulty_world.params.n  # default: every row kept
    assert record["dropped"] == {}
    assert set(rows["gt_fault"]) >= {"none", "404", "500", "slow", "truncated", "not_image", "oversized",
                                     "redirect", "redirect_loop", "noai"}
    check_against_ground_truth(faulty_world, rows, record, manifest["store_dir"])


def test_failures_say_why(faulty_run: tuple[dict, pl.DataFrame]) -> None:
    _, rows = faulty_run
    first = dict(rows.filter(pl.col("status") != "success").group_by("gt_fault")
                 .agg(pl.col("error_message").first()).iter_rows())
    assert "404" in first["404"] and "500" in first["500"]
    assert first["oversized"].startswith("image area larger than max_image_area (4,000,000 pixels)")
    assert "4000x4000" in first["oversized"]
    assert set(rows.filter(pl.col("gt_fault") == "oversized")["status"]) == {"image_too_large"}
    assert "redirect" in first["redirect_loop"]
    assert "X-Robots-Tag" in first["noai"]


def test_a_finished_download_is_reused(faulty_run: tuple[dict, pl.DataFrame]) -> None:
    """The same spec again is a cache hit: its URLs point at a server that is gone by now."""
    manifest, rows = faulty_run
    workdir = Path(manifest["run_dir"]).parent
    again = run_spec(download_spec(ACCEPTANCE_PARAMS), workdir)  # data.parquet is still there
    assert again["steps"][1]["cached"] is True
    assert read_step_output(again, "download").equals(rows)


def test_slow_urls_cost_the_timeout_not_the_stall(faulty_run: tuple[dict, pl.DataFrame]) -> None:
    manifest, rows = faulty_run
    slow = rows.filter(pl.col("gt_fault") == "slow")
    assert slow.height > 0 and set(slow["status"]) == {"failed_to_download"}
    assert manifest["steps"][1]["seconds"] < SLOW_SECONDS * 10  # bounded, however loaded the machine
