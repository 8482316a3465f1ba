"""The store files a row's image under its uid, and a source's own uids are web data: ``../x`` or
an absolute path wrote outside the store (``files`` format) or into the tar's names, a dot broke
the key, and 300 characters or a NUL failed the shard. Now each is filed under its file key."""

from __future__ import annotations

import tarfile
import unicodedata
from pathlib import Path

import polars as pl
import pytest
from curate_world.generate import World

from curate.filekeys import file_key
from curate.images import iter_images
from tests.download.conftest import NO_STALL_TIMEOUT, counting_server, run_download, url_table

pytestmark = pytest.mark.network

PARAMS = {"allow_private_networks": True, "timeout": NO_STALL_TIMEOUT, "image_size": 32, "threads": 8}


def hostile_uids(tmp_path: Path) -> list[str]:
    return ["../../escape", str(tmp_path / "escaped"), "a/b", "a_b", "x.y", "Case", "case", "caf\u00e9",
            unicodedata.normalize("NFD", "caf\u00e9"), "nul\x00byte", "ctl\x1b[2J", "L" * 300, "..",
            "plain-uid"]


def test_hostile_uids_are_filed_inside_the_store(clean_world: World, tmp_path: Path) -> None:
    uids = hostile_uids(tmp_path)
    with counting_server(clean_world) as server:
        table = url_table(clean_world, server.base_url, rows=len(uids)).with_columns(pl.Series("uid", uids))
        # the files run also fills an image store, so that a second run reads each row from the
        # store's records (another code path) instead of the web
        store = {**PARAMS, "output_format": "files", "image_store": str(tmp_path / "images")}
        runs = {"files": run_download(tmp_path / "files", table, store),
                "webdataset": run_download(tmp_path / "webdataset", table,
                                           {**PARAMS, "output_format": "webdataset"})}
        runs["from store"] = run_download(tmp_path / "second", table, store)
    assert not any(tmp_path.glob("escaped*")) and not any(tmp_path.rglob("escape.*"))
    assert set(runs["files"][1]["image_origin"]) == {"web"}
    assert set(runs["from store"][1]["image_origin"]) == {"store"}
    for fmt, (manifest, rows) in runs.items():
        assert rows["uid"].to_list() == uids and set(rows["status"]) == {"success"}, fmt
        keys = rows["image"].struct.field("key").to_list()
        assert keys == [file_key(u) for u in uids], fmt
        images = list(iter_images(rows["image"], manifest["store_dir"], as_bytes=True))
        assert all(images) and len(set(images)) == len(uids), fmt  # each row its own image
    files = sorted((tmp_path / "files").rglob("artifacts/shard-*/00000/*.jpg"))
    assert sorted(p.stem for p in files) == sorted(file_key(u) for u in uids)
    [tar] = (tmp_path / "webdataset").rglob("artifacts/shard-*/00000.tar")
    with tarfile.open(tar) as archive:
        assert sorted(archive.getnames()) == sorted(f"{file_key(u)}.jpg" for u in uids)
