"""An image store written by the decoder before ``pixels.py`` (16-bit PNGs white, EXIF-rotated
JPEGs sideways, records without a decoder mark): a new run says how many of its rows came from
such records and how to fix it, fetches them again only when asked, and never silently."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path

import polars as pl
import pytest
from curate_download.imagestore import ImageStore, record_key, record_problem
from curate_download.oldrecords import DECODED, found, is_old, split_old
from curate_download.pixels import DECODER
from curate_download.step import DownloadParams
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from curate.images import iter_images
from tests.download.conftest import NO_STALL_TIMEOUT, run_download
from tests.download.hostile import AS_SHOWN, check_as_shown, serve_hostile

PARAMS = {"allow_private_networks": True, "timeout": NO_STALL_TIMEOUT, "image_size": 32, "threads": 4}


def _summary(manifest: dict) -> dict:
    return next(r for r in manifest["steps"] if r["label"] == "download")["summary"]


def _white_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (255, 255, 255)).save(out, "JPEG", quality=95)
    return out.getvalue()


def _make_old(store: ImageStore, keys: list[str]) -> bytes:
    """Rewrite the records of ``keys`` as a curate before the decoder mark wrote them: no
    ``decoder`` field, and every success's image white (what the old decoder stored for a 16-bit PNG)."""
    white = _white_jpeg()
    name = f"{hashlib.sha256(white).hexdigest()}.jpg"
    Path(store.blob_path(name)).parent.mkdir(parents=True, exist_ok=True)
    Path(store.blob_path(name)).write_bytes(white)
    for key in keys:
        path = Path(store.record_path(key))
        record = json.loads(path.read_text())
        assert record.pop("decoder") == DECODER
        if record["status"] == "success":
            record["blob"] = name
        path.write_text(json.dumps(record, sort_keys=True))
    return white


@pytest.mark.network
def test_rows_from_an_old_store_are_reported_refetched_when_asked_and_then_marked(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    images = tmp_path / "images"
    params = {**PARAMS, "image_store": str(images)}
    with serve_hostile() as host:
        base = host.base_url
        urls = [f"{base}/{path}" for path in AS_SHOWN] + [f"{base}/ok/plain.png", f"{base}/nothing-here/x"]
        table = pl.DataFrame({"url": urls, "alt_text": [f"row {i}" for i in range(len(urls))]})
        first, rows1 = run_download(tmp_path / "first", table, params)
        assert rows1["status"].to_list() == ["success"] * 5 + ["failed_to_download"]
        check_as_shown(rows1, first["store_dir"], base)
        store = ImageStore(str(images))
        keys = [record_key(url, DownloadParams(**params).model_dump(mode="json")) for url in urls]
        assert {json.loads(Path(store.record_path(k)).read_text())["decoder"] for k in keys} == {DECODER}
        white = _make_old(store, keys)

        before = len(host.requests)
        with caplog.at_level(logging.WARNING, logger="curate_download"):
            warned, rows2 = run_download(tmp_path / "warned", table, params)
        assert len(host.requests) == before  # nothing refetched without being asked
        assert set(rows2["image_origin"]) == {"store"}
        assert list(iter_images(rows2["image"][:5], warned["store_dir"], as_bytes=True)) == [white] * 5
        summary = _summary(warned)
        assert summary["image_store_old_records"] == 5  # the 404 is a 404 whatever decodes
        [warning] = [w for w in summary["warnings"] if "image store records written before" in w]
        assert warning.startswith("5 row(s) came from image store records written before curate recorded")
        assert "(5 success; image store" in warning
        assert "PNGs (and 12-bit JPEGs) white" in warning and "sideways" in warning
        assert "`image_store_old_records: refetch`" in warning and "a new folder" in warning
        assert caplog.text.count("image store records written before") == 1  # once, not per shard

        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="curate_download"):
            refetched, rows3 = run_download(tmp_path / "refetched", table,
                                            {**params, "image_store_old_records": "refetch"})
        assert sorted(host.requests[before:]) == sorted(f"/{path}" for path in [*AS_SHOWN, "ok/plain.png"])
        assert rows3["image_origin"].to_list() == ["web"] * 5 + ["store"]
        check_as_shown(rows3, refetched["store_dir"], base)  # upright, not white
        assert _summary(refetched)["image_store_old_refetched"] == 5
        assert "image_store_old_records" not in _summary(refetched)
        assert "written before" not in caplog.text
        records = [json.loads(Path(store.record_path(k)).read_text()) for k in keys]
        assert [r.get("decoder") for r in records] == [DECODER] * 5 + [None]  # the old 404 stays as it was

        again = len(host.requests)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="curate_download"):
            upgraded, rows4 = run_download(tmp_path / "upgraded", table, params)
        assert len(host.requests) == again and set(rows4["image_origin"]) == {"store"}
        check_as_shown(rows4, upgraded["store_dir"], base)
        assert "image_store_old_records" not in _summary(upgraded) and "written before" not in caplog.text


@pytest.mark.network
def test_reuse_keeps_old_records_without_a_warning_but_counts_them(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    images = tmp_path / "images"
    params = {**PARAMS, "image_store": str(images)}
    with serve_hostile() as host:
        urls = [f"{host.base_url}/ok/r{i}.png" for i in range(3)]
        table = pl.DataFrame({"url": urls, "alt_text": ["a", "b", "c"]})
        run_download(tmp_path / "first", table, params)
        store = ImageStore(str(images))
        keys = [record_key(url, DownloadParams(**params).model_dump(mode="json")) for url in urls]
        _make_old(store, keys[:2])
        before = len(host.requests)
        with caplog.at_level(logging.WARNING, logger="curate_download"):
            reused, _ = run_download(tmp_path / "reused", table,
                                     {**params, "image_store_old_records": "reuse"})
        assert len(host.requests) == before
    assert _summary(reused)["image_store_old_records"] == 2 and "written before" not in caplog.text
    assert not [w for w in _summary(reused)["warnings"] if "written before" in w]


def test_old_records_mode_is_in_the_fingerprint_only_when_it_changes_the_rows() -> None:
    store = {"image_store": "/srv/images"}
    plain = DownloadParams(**store).fingerprint_dict()
    assert "image_store_old_records" not in plain
    assert DownloadParams(**store, image_store_old_records="reuse").fingerprint_dict() == plain
    assert DownloadParams(**store, image_store_old_records="refetch").fingerprint_dict() != plain
    assert DownloadParams().fingerprint_dict() == \
        DownloadParams(image_store_old_records="warn").fingerprint_dict()
    with pytest.raises(ValueError, match="image_store is not set"):
        DownloadParams(image_store_old_records="refetch")


def test_records_are_marked_with_the_decoder_and_a_curate_before_reads_them_as_ever(tmp_path: Path) -> None:
    store = ImageStore(str(tmp_path / "images"))
    store.put("a" * 64, {"status": "success", "width": 3}, b"\xff\xd8x", "jpg")
    raw = json.loads(Path(store.record_path("a" * 64)).read_text())
    assert raw["decoder"] == DECODER
    # The reader before the mark kept the fields it knew and checked only those: an unknown field is
    # no reason to distrust a record (record_problem then had no decoder check; it ignores unknowns now too).
    assert record_problem({**raw, "something_new": [1]}) is None
    (record,) = store.records(["a" * 64]).items.values()
    assert record["decoder"] == DECODER and not is_old(record)


@pytest.mark.parametrize("decoder", ["2", 0, -1, 2.0, True, [2], 2**40])
def test_a_decoder_mark_the_store_never_writes_is_not_trusted(decoder: object) -> None:
    record = {"status": "success", "blob": "a" * 64 + ".jpg", "decoder": decoder}
    assert "not a decoder version" in (record_problem(record) or "")


STATUSES = ["success", "failed_to_download", "failed_to_resize", "too_large", "image_too_large", "opted_out"]
RECORDS = st.fixed_dictionaries({"status": st.sampled_from(STATUSES),
                                 "decoder": st.none() | st.integers(1, DECODER + 1)})


@given(st.dictionaries(st.text(min_size=1, max_size=4), RECORDS, max_size=20),
       st.sampled_from(["warn", "refetch", "reuse"]))
def test_only_records_the_decoder_shaped_and_wrote_before_are_old(records: dict, mode: str) -> None:
    kept = {key: dict(record) for key, record in records.items()}
    old = split_old(kept, mode)  # type: ignore[arg-type]
    for key, record in records.items():
        expected = record["status"] in DECODED and (record["decoder"] is None or record["decoder"] < DECODER)
        assert (key in old) is expected
        assert (key in kept) is (not expected or mode != "refetch")


def test_a_damaged_count_file_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "shard-00000").mkdir()
    (tmp_path / "shard-00001").mkdir()
    (tmp_path / "shard-00000" / "store-old.json").write_text('{"mode": "warn", "rows": {"success": 3}}')
    (tmp_path / "shard-00001" / "store-old.json").write_text("{torn")
    assert found(tmp_path) == {"warn": {"success": 3}}
