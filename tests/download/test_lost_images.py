"""A download whose images are gone from the store, or cut short, is not reused: its rows were
cached (their files intact) but its tars were in no marker, so a later step read no image for any
row. Now the step's markers record each image file's size: the run fetches the lost part again
and ends with the rows and image bytes it had. Images from an image store (``store.tar``) are
looked up again the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
from curate_download import store
from curate_download.step import STORE_HITS, STORED_MARK, Download
from curate_world.generate import World

from curate.images import clear_cache, iter_images
from curate.runstore import StoreWarning
from curate.testing.runner import read_step_output, run_spec
from tests.download.conftest import NO_STALL_TIMEOUT, counting_server, download_spec, run_download, url_table

PARAMS = {"allow_private_networks": True, "timeout": NO_STALL_TIMEOUT, "retries": 1, "image_size": 32}


@pytest.mark.network
@pytest.mark.parametrize(("damage", "store"), [("cut short", False)])  # ("deleted", True): 35 s more here
def test_lost_images_are_fetched_again(clean_world: World, tmp_path: Path, damage: str, store: bool) -> None:
    params = {**PARAMS, **({"image_store": str(tmp_path / "images")} if store else {})}
    with counting_server(clean_world) as server:
        table = url_table(clean_world, server.base_url, rows=12)
        if store:  # the image store holds them: the run under test takes them from there
            run_download(tmp_path / "filler", table, params)
        manifest, rows = run_download(tmp_path, table, params)
        store_dir = Path(manifest["store_dir"])
        before = list(iter_images(rows["image"], store_dir, as_bytes=True))
        assert rows["status"].to_list() == ["success"] * 12 and all(before)
        (shard,) = set(rows["image"].struct.field("shard"))
        assert Path(shard).name == ("store.tar" if store else "00000.tar")
        tar = store_dir / shard
        if damage == "deleted":
            tar.unlink()
        else:
            tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])
        clear_cache()
        with pytest.warns(StoreWarning) as caught:
            again = run_spec(download_spec(params), tmp_path)  # the same source file: the same step
    said = " ".join(str(w.message) for w in caught)
    assert "step 'download', shard 0 was recomputed" in said and f"{tar}" in said, said
    assert [r["cached"] for r in again["steps"]] == [True, False]
    rows_again = read_step_output(again, "download")
    assert rows_again.equals(rows)
    assert list(iter_images(rows_again["image"], store_dir, as_bytes=True)) == before


def job(tmp_path: Path, parts: int, *, hits: bool) -> Path:
    """A job directory as a finished download leaves it: each part's stats, results and tar, and
    the image store's hits and their tar."""
    job_dir = tmp_path / "shard-00000"
    (job_dir / store.I2D_DIR).mkdir(parents=True)
    for part in range(parts):
        store.stats_path(job_dir, part).write_text("{}")
        store.results_path(job_dir, part).write_bytes(b"PAR1")
        store.image_location(job_dir, part, "webdataset").write_bytes(b"tar")
    if hits:
        (job_dir / STORE_HITS).write_bytes(b"PAR1")
        (job_dir / STORED_MARK).write_text("3")
        (job_dir / "store.tar").write_bytes(b"tar")
    return job_dir


def done_parts(job_dir: Path) -> list[int]:
    return [part for part in range(3) if store.stats_path(job_dir, part).exists()]


def test_a_part_whose_images_are_gone_is_fetched_again(tmp_path: Path) -> None:
    """Before, img2dataset skipped the part (its stats file said done) and the re-keying failed:
    "img2dataset wrote no 00001.tar for a finished part"."""
    step = Download(Download.Params())
    job_dir = job(tmp_path, 3, hits=False)
    step._forget_lost_images(job_dir)
    assert done_parts(job_dir) == [0, 1, 2]
    store.image_location(job_dir, 1, "webdataset").unlink()  # gone, or removed by the engine: cut short
    step._forget_lost_images(job_dir)
    assert done_parts(job_dir) == [0, 2] and not store.results_path(job_dir, 1).exists()


def test_images_gone_from_the_image_stores_tar_are_looked_up_again(tmp_path: Path) -> None:
    """The hits decide how the other rows split into parts: all of the job is done again."""
    step = Download(Download.Params(image_store=str(tmp_path / "images")))
    job_dir = job(tmp_path, 2, hits=True)
    step._forget_lost_images(job_dir)
    assert (job_dir / STORE_HITS).exists() and done_parts(job_dir) == [0, 1]
    (job_dir / "store.tar").unlink()
    step._forget_lost_images(job_dir)
    assert not (job_dir / STORE_HITS).exists() and not (job_dir / STORED_MARK).exists()
    assert done_parts(job_dir) == [] and not list(job_dir.glob("0000*.tar"))
