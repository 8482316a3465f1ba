"""The image store: a second run of a spec, in a new run directory, fetches nothing; and
``--retry-failed`` fetches again only the rows that failed transiently."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from curate_download.imagestore import KEY_PARAMS, ImageStore, record_key
from curate_download.step import TRANSIENT_PATTERN, transient
from curate_world.generate import World
from hypothesis import given
from hypothesis import strategies as st

from curate.images import iter_images
from curate.testing.runner import read_step_output, run_spec
from tests.download.conftest import TIMEOUT, counting_server, download_spec, run_download, url_table
from tests.download.hostile import serve_hostile

PARAMS = {"allow_private_networks": True, "timeout": TIMEOUT, "image_size": 32, "threads": 8}


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
    assert store.records([key]) == {}
    store.put(key, {"status": "success", "width": 3}, b"\xff\xd8bytes", "jpg")
    (record,) = store.records([key]).values()
    assert record["status"] == "success" and record["width"] == 3
    assert store.blobs([record["blob"]]) == {record["blob"]: b"\xff\xd8bytes"}
    # a torn record (a foreign or half-written file) is as if absent: the row is fetched again
    Path(store.record_path(key)).write_text("{not json")
    assert store.records([key]) == {}


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
    params = {"allow_private_networks": True, "timeout": 5.0, "image_size": 24, "threads": 4, "retries": 0}
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
