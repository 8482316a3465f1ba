"""The image store: a second run of a spec, in a new run directory, fetches nothing; and
``--retry-failed`` fetches again only the rows that failed transiently."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pytest
from curate_download.imagestore import (
    BLOB_NAME,
    KEY_PARAMS,
    ImageStore,
    ImageStoreError,
    blob_name_problem,
    record_key,
)
from curate_download.step import TRANSIENT_PATTERN, DownloadParams, transient
from curate_world.generate import World
from hypothesis import given
from hypothesis import strategies as st

from curate.images import iter_images
from curate.testing.runner import read_step_output, run_spec
from tests.download.conftest import NO_STALL_TIMEOUT, counting_server, download_spec, run_download, url_table
from tests.download.hostile import serve_hostile

PARAMS = {"allow_private_networks": True, "timeout": NO_STALL_TIMEOUT, "image_size": 32, "threads": 8}


def image_bytes(manifest: dict, rows: pl.DataFrame) -> list[bytes | None]:
    return list(iter_images(rows["image"], manifest["store_dir"], as_bytes=True))


@pytest.mark.network
def test_a_second_run_in_a_new_run_directory_fetches_nothing(clean_world: World, tmp_path: Path) -> None:
    images = tmp_path / "images"
    with counting_server(clean_world) as server:
        table = url_table(clean_world, server.base_url, rows=30)
        table = pl.concat([table, table.head(2).with_columns(pl.col("url") + "-gone", pl.col("alt_text") + " gone")])
        first, rows1 = run_download(tmp_path / "first", table, {**PARAMS, "image_store": str(images)})
        fetched = sum(server.counts.values())
        # Another run directory, other tuning (threads are not part of the key): all from the store.
        second, rows2 = run_download(tmp_path / "second", table,
                                     {**PARAMS, "image_store": str(images), "threads": 2})
        after_second = sum(server.counts.values())
        # A param that changes the stored bytes is another key: fetched again.
        third, rows3 = run_download(tmp_path / "third", table,
                                    {**PARAMS, "image_store": str(images), "image_size": 24})
        after_third = sum(server.counts.values())
    print(f"\nrequests: first run {fetched}, second run {after_second - fetched}, "
          f"variant with another image_size {after_third - after_second}")
    assert fetched == 32
    assert after_second == fetched  # the measure: 0 requests
    assert after_third - after_second == 32
    statuses = rows1["status"].to_list()
    assert statuses.count("success") == 30 and statuses.count("failed_to_download") == 2
    assert rows2["status"].to_list() == statuses
    assert rows2["error_message"].to_list() == rows1["error_message"].to_list()
    for column in ("width", "height", "original_width", "original_height", "sha256"):
        assert rows2[column].to_list() == rows1[column].to_list(), column
    assert image_bytes(second, rows2) == image_bytes(first, rows1)
    # lineage: a row says where its result came from
    assert set(rows1["image_origin"]) == {"web"}
    assert set(rows2["image_origin"]) == {"store"}
    assert rows2["image"].struct.field("shard").drop_nulls().str.ends_with("store.tar").all()
    assert set(rows3["width"].drop_nulls()) == {24}
    records = list((images / "v1" / "records").rglob("*.json"))
    assert len(records) == 64  # 32 urls x 2 image sizes, successes and 404s alike
    blobs = list((images / "v1" / "blobs").rglob("*.jpg"))
    assert len(blobs) == 60


@pytest.mark.network
def test_files_output_format_reads_the_store_too(clean_world: World, tmp_path: Path) -> None:
    params = {**PARAMS, "image_store": str(tmp_path / "images"), "output_format": "files"}
    with counting_server(clean_world) as server:
        table = url_table(clean_world, server.base_url, rows=8)
        first, rows1 = run_download(tmp_path / "first", table, params)
        before = sum(server.counts.values())
        second, rows2 = run_download(tmp_path / "second", table, params)
        assert sum(server.counts.values()) == before == 8
    assert image_bytes(first, rows1) == image_bytes(second, rows2)
    assert all(Path(second["store_dir"], s).is_dir() for s in rows2["image"].struct.field("shard").unique())


def test_transient_failures_are_not_stored(tmp_path: Path) -> None:
    store = ImageStore(str(tmp_path / "images"))
    key = record_key("http://example.com/a.jpg", {"image_size": 32})
    assert store.records([key]) == ({}, {})
    store.put(key, {"status": "success", "width": 3}, b"\xff\xd8bytes", "jpg")
    (record,) = store.records([key]).items.values()
    assert record["status"] == "success" and record["width"] == 3
    assert store.blobs([record["blob"]], max_bytes=1024) == ({record["blob"]: b"\xff\xd8bytes"}, {})
    # a torn record (a foreign or half-written file) is not used: the row is fetched again
    Path(store.record_path(key)).write_text("{not json")
    assert store.records([key]) == ({}, {key: "is not JSON"})


@given(st.text(min_size=1, max_size=50), st.integers(8, 4096), st.sampled_from(KEY_PARAMS))
def test_record_keys_depend_on_url_and_stored_params_only(url: str, size: int, param: str) -> None:
    params = {"image_size": size, "threads": 4, "timeout": 10}
    key = record_key(url, params)
    assert key == record_key(url, {**params, "threads": 64, "timeout": 1, "retries": 3})
    assert key != record_key(url + "x", params)
    assert key != record_key(url, {**params, param: "other"})


@pytest.mark.parametrize(("message", "retried"), [
    ("HTTP Error 429: Too Many Requests", True),
    ("HTTP Error 503: Service Unavailable (gave up after 3 attempts)", True),
    ("HTTP Error 500: Internal Server Error", True),
    ("timed out: the transfer took longer than the download step's timeout", True),
    ("<urlopen error [Errno 111] Connection refused>", True),
    ("Remote end closed connection without response", True),
    ("img2dataset reported nothing for this row (see x)", True),
    ("HTTP Error 404: Not Found", False),
    ("cannot identify image file <_io.BytesIO object>", False),
    ("the body is longer than max_bytes", False),
])
def test_which_failures_are_transient(message: str, retried: bool) -> None:
    rows = pl.DataFrame({"status": ["failed_to_download"], "error_message": [message]})
    assert rows.filter(transient()).height == int(retried), TRANSIENT_PATTERN
    assert pl.DataFrame({"status": ["too_large"], "error_message": [message]}).filter(transient()).height == 0


@pytest.mark.network
def test_retry_failed_refetches_only_transient_failures(tmp_path: Path) -> None:
    params = {"allow_private_networks": True, "timeout": NO_STALL_TIMEOUT, "image_size": 24, "threads": 4,
              "retries": 0}
    with serve_hostile() as host:
        base = host.base_url
        kinds = ["ok", "flaky", "gone", "ok2", "flaky2"]
        urls = [f"{base}/ok/a.png", f"{base}/retry-after/0/b", f"{base}/nothing-here/c", f"{base}/ok/d.png",
                f"{base}/retry-date/e"]
        table = pl.DataFrame({"url": urls, "alt_text": kinds})
        spec = download_spec(params)
        first = run_spec(spec, tmp_path, tables={"data.parquet": table})
        rows1 = read_step_output(first, "download")
        data_files = sorted(Path(first["steps"][1]["path"]).glob("data/*.parquet"))
        before = {f.name: f.read_bytes() for f in data_files}
        requests1 = list(host.requests)
        again = run_spec(spec, tmp_path)  # no --retry-failed: cached, nothing fetched
        assert host.requests == requests1 and again["steps"][1]["cached"]
        retried = run_spec(spec, tmp_path, retry_failed=True)
        rows2 = read_step_output(retried, "download")
        requests2 = host.requests[len(requests1):]
        once_more = run_spec(spec, tmp_path, retry_failed=True)  # nothing transient left: cached
        assert host.requests[len(requests1) + len(requests2):] == []
    print(f"\nfirst run: {dict(zip(kinds, rows1['status']))}; retried requests: {requests2}")
    assert dict(zip(kinds, rows1["status"])) == {"ok": "success", "flaky": "failed_to_download",
                                                 "gone": "failed_to_download", "ok2": "success",
                                                 "flaky2": "failed_to_download"}
    assert sorted(requests2) == ["/retry-after/0/b", "/retry-date/e"]  # not the 404, not the successes
    assert rows2["status"].to_list() == ["success"] * 2 + ["failed_to_download"] + ["success"] * 2
    assert retried["steps"][1]["retried_rows"] == 2 and once_more["steps"][1]["cached"]
    untouched = [0, 2, 3]
    assert rows2[untouched].equals(rows1[untouched])  # the same rows, images and all
    assert image_bytes(retried, rows2[untouched]) == image_bytes(first, rows1[untouched])
    assert all(image_bytes(retried, rows2[[1, 4]]))
    after = {f.name: f.read_bytes() for f in sorted(Path(retried["steps"][1]["path"]).glob("data/*.parquet"))}
    assert after.keys() == before.keys()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "complete"


def test_a_spec_without_an_image_store_keeps_its_fingerprint() -> None:
    from curate_download.step import DownloadParams

    assert "image_store" not in DownloadParams().fingerprint_dict()
    assert DownloadParams(image_store="s3://bucket/images").fingerprint_dict()["image_store"] == "s3://bucket/images"


# -- a shared store is not trusted -------------------------------------------------------------
def _blob_name(data: bytes, extension: str = "jpg") -> str:
    return f"{hashlib.sha256(data).hexdigest()}.{extension}"


@given(st.text(max_size=80) | st.from_regex(r"[0-9a-fA-F./]{60,70}\.(jpg|png|webp|gif)", fullmatch=True))
def test_only_names_the_store_writes_become_paths(name: str) -> None:
    store = ImageStore("/srv/images")
    if blob_name_problem(name) is None:
        assert BLOB_NAME.fullmatch(name)
        path = Path(store.blob_path(name))
        assert path.parent == Path("/srv/images/v1/blobs") / name[:2] and path.name == name
    else:
        with pytest.raises(ImageStoreError, match="64 lowercase hex"):
            store.blob_path(name)


TAMPERED_NAMES = ["../../../../etc/hostname", "../../dev/zero", "/etc/hostname", "ab/../../../etc/hostname",
                  "A" * 64 + ".jpg", "a" * 64 + ".gif", "a" * 64 + ".jpg/../x", "a" * 63 + ".jpg", 7, None]


@pytest.mark.parametrize("name", TAMPERED_NAMES)
def test_a_blob_name_the_store_never_writes_is_rejected_unread(tmp_path: Path, name: object) -> None:
    store = ImageStore(str(tmp_path / "images"))
    found, rejected = store.blobs([name], max_bytes=2**20)  # type: ignore[list-item]
    assert found == {} and "64 lowercase hex" in rejected[name]  # type: ignore[index]


def test_blob_files_that_are_not_what_their_name_says_are_rejected(tmp_path: Path) -> None:
    store = ImageStore(str(tmp_path / "images"))
    good, forged, big = b"\xff\xd8good", b"\xff\xd8forged", b"\xff\xd8" + b"b" * 5000
    names = {what: _blob_name(what.encode() + b"-name") for what in ("link", "fifo", "zero", "forged", "dir")}
    names |= {"good": _blob_name(good), "big": _blob_name(big), "absent": _blob_name(b"absent")}
    for name in names.values():
        Path(store.blob_path(name)).parent.mkdir(parents=True, exist_ok=True)
    Path(store.blob_path(names["good"])).write_bytes(good)
    Path(store.blob_path(names["big"])).write_bytes(big)
    Path(store.blob_path(names["forged"])).write_bytes(forged)
    Path(store.blob_path(names["link"])).symlink_to("/etc/hostname")
    Path(store.blob_path(names["zero"])).symlink_to("/dev/zero")
    os.mkfifo(store.blob_path(names["fifo"]))  # opening it must not wait for a writer
    Path(store.blob_path(names["dir"])).mkdir()
    found, rejected = store.blobs(list(names.values()), max_bytes=1024)
    assert found == {names["good"]: good}
    why = {what: rejected.get(name) for what, name in names.items()}
    assert why["good"] is None and why["absent"] is None  # absent: an ordinary miss, not a rejection
    assert "symbolic link" in why["link"] and "symbolic link" in why["zero"]
    assert "not a regular file" in why["fifo"] and "not a regular file" in why["dir"]
    assert "do not hash to its name" in why["forged"]
    assert "longer than 1024 bytes" in why["big"]
    assert store.blobs([names["big"]], max_bytes=len(big)).items == {names["big"]: big}


@pytest.mark.parametrize(("record", "why"), [
    ({"status": "success", "blob": None}, "names no blob"),
    ({"status": "failed_to_download", "blob": "a" * 64 + ".jpg"}, "names a blob"),
    ({"status": "refused", "blob": None}, "not one the store records"),
    ({"status": "success", "blob": "x", "width": "wide"}, "width is not a size"),
    ({"status": "success", "blob": "x", "error_message": 3}, "error_message is not a string"),
    (["status", "success"], "not a JSON object"),
])
def test_records_the_store_never_writes_are_rejected(tmp_path: Path, record: object, why: str) -> None:
    store = ImageStore(str(tmp_path / "images"))
    key = record_key("http://example.com/a.jpg", {})
    Path(store.record_path(key)).parent.mkdir(parents=True)
    Path(store.record_path(key)).write_text(json.dumps(record))
    found, rejected = store.records([key])
    assert found == {} and why in rejected[key]


def test_record_files_that_are_links_or_fifos_are_rejected_unread(tmp_path: Path) -> None:
    store = ImageStore(str(tmp_path / "images"))
    keys = [record_key(f"http://example.com/{i}.jpg", {}) for i in range(3)]
    for key in keys:
        Path(store.record_path(key)).parent.mkdir(parents=True, exist_ok=True)
    Path(store.record_path(keys[0])).symlink_to("/dev/zero")
    os.mkfifo(store.record_path(keys[1]))
    too_long = {"status": "too_large", "error_message": "x" * 2**17}
    Path(store.record_path(keys[2])).write_text(json.dumps(too_long))
    found, rejected = store.records(keys)
    assert found == {}
    assert "symbolic link" in rejected[keys[0]] and "not a regular file" in rejected[keys[1]]
    assert "longer than" in rejected[keys[2]]


def test_concurrent_puts_of_one_image_all_succeed(tmp_path: Path) -> None:
    """Rows that share an image put the same blob from several threads at once (the step's
    _to_store uses 8): each write goes aside under a name of its own, so none loses its file."""
    image = b"\xff\xd8" + os.urandom(200_000)
    for attempt in range(50):  # the old pid-only temp name failed ~15 % of these rounds
        store = ImageStore(str(tmp_path / f"images{attempt}"))
        barrier = threading.Barrier(8)

        def put(index: int, store: ImageStore = store, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            store.put(f"{index:064x}", {"status": "success", "width": 9}, image, "jpg")

        with ThreadPoolExecutor(8) as pool:
            for future in [pool.submit(put, index) for index in range(8)]:
                future.result()
        blobs = [p for p in (tmp_path / f"images{attempt}" / "v1" / "blobs").rglob("*") if p.is_file()]
        assert [p.name for p in blobs] == [_blob_name(image)] and blobs[0].read_bytes() == image
        found, rejected = store.records([f"{index:064x}" for index in range(8)])
        assert len(found) == 8 and not rejected


def test_a_tampered_blob_is_rewritten_by_the_next_put(tmp_path: Path) -> None:
    store = ImageStore(str(tmp_path / "images"))
    image = b"\xff\xd8image"
    path = Path(store.blob_path(_blob_name(image)))
    path.parent.mkdir(parents=True)
    path.symlink_to("/dev/zero")
    store.put("0" * 64, {"status": "success"}, image, "jpg")
    assert not path.is_symlink() and path.read_bytes() == image
    mtime = path.stat().st_mtime_ns
    store.put("1" * 64, {"status": "success"}, image, "jpg")  # the same bytes already there: left alone
    assert path.stat().st_mtime_ns == mtime


@pytest.mark.network
def test_rows_sharing_an_image_fill_a_fresh_store(tmp_path: Path) -> None:
    """Six rows with one URL and four URLs serving one PNG: one blob, put by several threads at once."""
    params = {**PARAMS, "image_store": str(tmp_path / "images")}
    with serve_hostile() as host:
        urls = [f"{host.base_url}/ok/one.png"] * 6 + [f"{host.base_url}/same/{name}" for name in "abcd"]
        table = pl.DataFrame({"url": urls, "alt_text": [f"row {i}" for i in range(len(urls))]})
        first, rows1 = run_download(tmp_path / "first", table, params)
        fetched = len(host.requests)
        second, rows2 = run_download(tmp_path / "second", table, params)
        assert len(host.requests) == fetched
    assert set(rows1["status"]) == {"success"} and set(rows2["image_origin"]) == {"store"}
    assert image_bytes(second, rows2) == image_bytes(first, rows1)
    assert len(list((tmp_path / "images" / "v1" / "records").rglob("*.json"))) == 5
    assert len([p for p in (tmp_path / "images" / "v1" / "blobs").rglob("*") if p.is_file()]) == 2


@pytest.mark.network
def test_tampered_records_are_fetched_again_never_read(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A shared store whose records name files outside it, or blobs that are not what their name
    says: those rows are fetched again, counted and logged; nothing outside the store is read."""
    images = tmp_path / "images"
    params = {**PARAMS, "image_store": str(images)}
    with serve_hostile() as host:
        urls = [f"{host.base_url}/ok/t{i}.png" for i in range(6)]
        table = pl.DataFrame({"url": urls, "alt_text": [f"row {i}" for i in range(6)]})
        first, rows1 = run_download(tmp_path / "first", table, params)
        store = ImageStore(str(images))
        keys = [record_key(url, DownloadParams(**params).model_dump(mode="json")) for url in urls]
        records = [json.loads(Path(store.record_path(key)).read_text()) for key in keys]
        up = "../" * 40  # from any depth to /: before the fix row 0's image was /etc/hostname's bytes
        tampered = {0: up + "etc/hostname", 1: up + "dev/zero",  # /dev/zero: never-ending, once filled memory
                    2: "0" * 64 + ".png"}  # a name of the right form, for the wrong format and bytes
        for index, blob in tampered.items():
            Path(store.record_path(keys[index])).write_text(json.dumps({**records[index], "blob": blob}))
        forged = Path(store.blob_path(records[3]["blob"]))
        forged.unlink()
        forged.symlink_to("/etc/hostname")  # a blob that is a link out of the store
        Path(store.blob_path(records[4]["blob"])).write_bytes(b"\xff\xd8 not the stored bytes")
        before = len(host.requests)
        with caplog.at_level(logging.WARNING, logger="curate_download"):
            second, rows2 = run_download(tmp_path / "second", table, params)
        refetched = sorted(host.requests[before:])
        third, rows3 = run_download(tmp_path / "third", table, params)  # the entries were rewritten
        assert len(host.requests) == before + len(refetched)
    assert refetched == sorted(f"/ok/t{i}.png" for i in range(5))
    assert rows2["image_origin"].to_list() == ["web"] * 5 + ["store"]
    assert set(rows3["image_origin"]) == {"store"}
    assert image_bytes(second, rows2) == image_bytes(first, rows1) == image_bytes(third, rows3)
    for column in ("status", "width", "height", "sha256"):
        assert rows2[column].to_list() == rows1[column].to_list(), column
    summary = next(r for r in second["steps"] if r["label"] == "download")["summary"]
    assert summary["image_store_untrusted"] == 5
    assert any("not trusted" in warning for warning in summary["warnings"])
    assert "5 image store record(s) for shard 0 not trusted" in caplog.text
