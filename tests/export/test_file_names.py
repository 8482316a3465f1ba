"""Exports name files after uids, and a source's own uids are web data: no name may point outside
the export, be refused by the file system, or be another row's."""

from __future__ import annotations

import json
import tarfile
import unicodedata
from pathlib import Path

import polars as pl
import pytest
from curate_export.sinks import ImageFolderSink, WebDatasetSink

from curate.filekeys import file_key
from tests.export.conftest import make_store
from tests.export.test_sinks import WEBDATASET_LEAKS, write

HOSTILE_UIDS = ["../../escape", "/tmp/curate-export-escape", "a/b", "a_b", "x.y", "x_y", "Case", "case",
                "caf\u00e9", unicodedata.normalize("NFD", "caf\u00e9"), "nul\x00byte", "ctl\x1b[2J\x07",
                "L" * 300, "..", "-rf", "0000000000000010"]


def hostile_table(tmp_path: Path) -> tuple[Path, pl.DataFrame]:
    """The store's images (keyed as the download step keys them) under uids a source brought."""
    store = tmp_path / "store"
    table = make_store(store, len(HOSTILE_UIDS), png_every=0).head(len(HOSTILE_UIDS))
    return store, table.with_columns(pl.Series("uid", HOSTILE_UIDS))


def test_every_name_is_a_fresh_safe_file_in_the_export(tmp_path):
    store, table = hostile_table(tmp_path)
    facts, out = write(ImageFolderSink, table, tmp_path, store)
    assert facts["rows"] == len(HOSTILE_UIDS)
    records = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert [r["uid"] for r in records] == HOSTILE_UIDS
    names = [r["file_name"] for r in records]
    assert names == [f"images/{file_key(u)}.jpg" for u in HOSTILE_UIDS]
    # one file per row, all inside images/, and distinct also where case does not count (macOS)
    assert sorted(p.relative_to(out).as_posix() for p in (out / "images").iterdir()) == sorted(names)
    assert len({n.casefold() for n in names}) == len(names)
    assert not Path("/tmp/curate-export-escape.jpg").exists()


@WEBDATASET_LEAKS
def test_tar_members_stay_inside_and_keep_every_sample(tmp_path):
    import webdataset as wds

    store, table = hostile_table(tmp_path)
    facts, out = write(WebDatasetSink, table, tmp_path, store, repeats=2, seed=0)
    assert facts["samples"] == 2 * len(HOSTILE_UIDS)
    with tarfile.open(out / "00000.tar") as tar:
        names = tar.getnames()
        assert all("/" not in n and ".." not in n and n.isascii() and n.isprintable() for n in names)
        # what Python 3.11's extractall() without a filter does with each name: it must stay here
        target = tmp_path / "extracted"
        tar.extractall(target, filter="fully_trusted")
    assert sorted(p.name for p in target.iterdir()) == sorted(names)
    seen = {}
    for sample in wds.WebDataset(str(out / "00000.tar"), shardshuffle=False):
        meta = json.loads(sample["json"])
        assert sample["txt"].decode() in meta["captions"]
        seen[sample["__key__"]] = meta["uid"]
    assert sorted(seen.values()) == sorted(HOSTILE_UIDS * 2)  # every sample whole, none merged
    assert seen[f"{file_key('0000000000000010')}_0"] == "0000000000000010"


def test_a_forged_listing_cannot_make_an_export_delete_or_write_outside_its_folder(tmp_path):
    """An export deletes the files its folder's listing names and writes through the folder's
    sub-folders; the listing is a file anyone could have put there (an unpacked archive)."""
    from curate_export.folder import LISTING

    from curate.errors import OutputError

    store = tmp_path / "store"
    table = make_store(store, 3, png_every=0).head(3)
    precious = tmp_path / "precious.txt"
    precious.write_text("mine")
    out = tmp_path / "run" / "export"
    out.mkdir(parents=True)
    (out / LISTING).write_text(json.dumps({"format": "imagefolder", "files": ["../../precious.txt"]}))
    with pytest.raises(OutputError, match="not written by curate"):
        write(ImageFolderSink, table, tmp_path, store)
    assert precious.read_text() == "mine"

    elsewhere = tmp_path / "photos"
    elsewhere.mkdir()
    (elsewhere / f"{table['uid'][0]}.jpg").write_text("mine")
    (out / LISTING).write_text(json.dumps({"format": "imagefolder", "files": ["metadata.jsonl"]}))
    (out / "images").symlink_to(elsewhere)
    with pytest.raises(OutputError, match="link"):
        write(ImageFolderSink, table, tmp_path, store)
    assert [p.read_text() for p in elsewhere.iterdir()] == ["mine"]
