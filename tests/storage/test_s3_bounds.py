"""Listings and requests to object storage are bounded: a listing stops past CURATE_S3_MAX_OBJECTS
objects, and every request past its deadline (CURATE_S3_CALL_DEADLINE, plus its bytes at
CURATE_S3_MIN_BYTES_PER_SECOND). Against a hostile S3 endpoint on loopback (``hostile_s3``: an
endless listing, a repeated continuation token, answers that trickle in) and moto's S3 server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from curate import remote
from curate.errors import OutputError, StorageError
from curate.listing import TRUNCATED_PAGE_COST
from tests.storage.conftest import ENV, S3
from tests.storage.hostile_s3 import ETAG, OBJECT_SIZE, PAGE_KEYS, HostileS3, serve_hostile_s3

pytestmark = pytest.mark.network


@pytest.fixture
def hostile(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileS3]:
    with serve_hostile_s3() as server:
        for name, value in {**ENV, "AWS_ENDPOINT_URL": server.endpoint}.items():
            monkeypatch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
            monkeypatch.delenv(name, raising=False)
        yield server


def parquet(name: str) -> bool:
    return name.endswith(".parquet")


@pytest.mark.parametrize("path", ["data/", "data/*.parquet", "data/**"])
@pytest.mark.parametrize("bucket", ["endless", "endless-empty"])
def test_an_endless_listing_stops_past_the_bound(hostile: HostileS3, monkeypatch: pytest.MonkeyPatch, bucket: str,
                                                 path: str) -> None:
    """An endpoint that always says there is more held list_files forever, collecting every page
    (PAGE_KEYS keys a page, or none: such a page counts as TRUNCATED_PAGE_COST objects)."""
    assert PAGE_KEYS < TRUNCATED_PAGE_COST
    monkeypatch.setenv("CURATE_S3_MAX_OBJECTS", str(5 * TRUNCATED_PAGE_COST))
    url = f"s3://{bucket}/{path}"
    with pytest.raises(StorageError) as failure:
        remote.list_files(url, parquet)
    message = failure.value.message
    print(f"\n{message}\n{failure.value.hint}")
    assert f"cannot list {url}: the listing went past {5 * TRUNCATED_PAGE_COST} objects (6 pages)" in message
    assert "CURATE_S3_MAX_OBJECTS" in message
    assert "narrower prefix" in failure.value.hint and "raise CURATE_S3_MAX_OBJECTS" in failure.value.hint
    assert len(hostile.requests) == 6  # the page that went past, and not one more


def test_a_repeated_continuation_token_ends_the_listing(hostile: HostileS3) -> None:
    with pytest.raises(StorageError, match="sent back the continuation token it was given") as failure:
        remote.list_files("s3://same-token/data/", parquet)
    assert "s3://same-token/data/" in failure.value.message and "AWS_ENDPOINT_URL" in failure.value.hint
    assert len(hostile.requests) == 2


@pytest.mark.parametrize("path", ["data/", "data/*.parquet"])
def test_keys_outside_the_prefix_are_not_listed(hostile: HostileS3, path: str) -> None:
    """S3 lists only keys under the prefix asked for; an endpoint naming others (or none) does
    not get them downloaded."""
    assert [url for url, _ in remote.list_files(f"s3://stray/{path}", parquet)] == ["s3://stray/data/a.parquet"]


def test_an_export_to_a_prefix_with_an_endless_listing_looks_at_one_page(hostile: HostileS3, tmp_path: Path) -> None:
    """Whether the prefix is empty, and what to show if not, is one request (it was the whole listing)."""
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    with pytest.raises(OutputError, match="is not empty and was not written by curate") as failure:
        remote.publish(folder, "s3://endless/out", "_CURATE_EXPORT.json")
    assert "part-000000-0.parquet" in str(failure.value)
    listings = [path for method, path in hostile.requests if "list-type=2" in path]
    assert len(listings) == 1 and "max-keys=8" in listings[0]


def _download(tmp_path: Path) -> Path:
    listed = remote.Listed(OBJECT_SIZE, ETAG.strip('"'))  # as the listing names it
    return remote.download("s3://drip/data/a.parquet", listed, tmp_path / "cache")


OPERATIONS = {
    "list": ("list", "s3://drip/data/", lambda tmp_path: remote.list_files("s3://drip/data/", parquet)),
    "head": ("read", "s3://drip/data/a.parquet", lambda tmp_path: remote.info("s3://drip/data/a.parquet")),
    "range": ("read", "s3://drip/data/a.parquet",
              lambda tmp_path: remote.read_ranges(["s3://drip/data/a.parquet"], [0], [100], 1)),
    "download": ("download", "s3://drip/data/a.parquet", _download),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_an_answer_that_trickles_in_stops_at_the_deadline(hostile: HostileS3, monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path, operation: str) -> None:
    """Each read of the answer comes within botocore's read timeout (15 s), so nothing stopped a
    listing page, a HEAD, a range or a download that took minutes (DRIP_CAP_SECONDS here) or forever."""
    monkeypatch.setenv("CURATE_S3_CALL_DEADLINE", "1")
    doing, url, run = OPERATIONS[operation]
    started = time.monotonic()
    with pytest.raises(StorageError) as failure:
        run(tmp_path)
    message = failure.value.message
    print(f"\n{operation}: failed after {time.monotonic() - started:.1f} s: {message}\n{failure.value.hint}")
    assert f"cannot {doing} {url}: the storage endpoint did not finish within 1 s, retries included" in message
    assert f"endpoint {hostile.endpoint}" in message and "CURATE_S3_CALL_DEADLINE=1 s a request" in message
    moved = {"download": f"{OBJECT_SIZE:,} bytes", "range": "100 bytes"}.get(operation)
    assert (f", and {moved} at CURATE_S3_MIN_BYTES_PER_SECOND=1,048,576" in message) if moved else \
        "CURATE_S3_MIN_BYTES_PER_SECOND" not in message
    assert "raise CURATE_S3_CALL_DEADLINE" in failure.value.hint
    assert "CURATE_S3_MIN_BYTES_PER_SECOND" in failure.value.hint
    assert not (tmp_path / "cache").exists() or not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert remote.info("s3://endless/data/a.parquet")["size"] == OBJECT_SIZE  # the next request goes through


def test_a_deadline_scales_with_the_bytes_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATE_S3_CALL_DEADLINE", "10")
    monkeypatch.setenv("CURATE_S3_MIN_BYTES_PER_SECOND", "1000")
    assert remote.deadline() == 10 and remote.deadline(5000) == 15 and remote.deadline(0, requests=3) == 30
    monkeypatch.delenv("CURATE_S3_CALL_DEADLINE")
    monkeypatch.delenv("CURATE_S3_MIN_BYTES_PER_SECOND")
    assert remote.deadline(2**30) == 300 + 1024


def _put_many(s3: S3, keys: list[str]) -> None:
    """Objects written straight into the running moto server's store: thousands of PUTs over
    HTTP would take most of a minute."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for key in keys:
        backend.put_object(s3.bucket, key, key.encode())


def test_a_listing_of_two_pages_is_whole_and_bounded(s3: S3, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read a page at a time (S3 sends 1000 keys a page), the listing is every object, sorted,
    with what curate keeps of each: its size and ETag."""
    names = [f"data/{i:04d}.parquet" for i in range(1005)]
    _put_many(s3, [*names, "data/notes.txt", "data/sub/x.parquet", "data/sub/"])
    by_prefix = remote.list_files(s3.url("data/"), parquet)
    assert [url for url, _ in by_prefix] == [s3.url(name) for name in [*names, "data/sub/x.parquet"]]
    head = s3.client.head_object(Bucket=s3.bucket, Key="data/1004.parquet")
    assert dict(by_prefix)[s3.url("data/1004.parquet")] == remote.Listed(head["ContentLength"], head["ETag"].strip('"'))
    monkeypatch.setenv("CURATE_S3_MAX_OBJECTS", "1007")  # the prefix holds 1008 objects
    with pytest.raises(StorageError, match="went past 1,007 objects"):
        remote.list_files(s3.url("data/"), parquet)
    # a glob lists one level: data/sub/ is one entry, and 1007 are within the bound
    assert [url for url, _ in remote.list_files(s3.url("data/*.parquet"), parquet)] == [s3.url(n) for n in names]


@pytest.mark.parametrize("variable, value, said", [
    ("CURATE_S3_MAX_OBJECTS", "many", "CURATE_S3_MAX_OBJECTS='many' is not a whole number of objects"),
    ("CURATE_S3_MAX_OBJECTS", "0", "CURATE_S3_MAX_OBJECTS='0' is not a whole number of objects of at least 1"),
    ("CURATE_S3_CALL_DEADLINE", "0", "CURATE_S3_CALL_DEADLINE='0' is not a number of seconds in (0, 86400]"),
    ("CURATE_S3_MIN_BYTES_PER_SECOND", "fast", "CURATE_S3_MIN_BYTES_PER_SECOND='fast' is not a number of bytes "
                                               "per second"),
])
def test_a_bound_that_is_no_number_is_named(s3: S3, monkeypatch: pytest.MonkeyPatch, variable: str, value: str,
                                            said: str) -> None:
    s3.put("data/a.parquet", b"x")
    monkeypatch.setenv(variable, value)
    with pytest.raises(StorageError, match=said.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")):
        remote.list_files(s3.url("data/"), parquet)


def test_curate_validate_names_an_endless_listing(hostile: HostileS3, tmp_path: Path) -> None:
    from tests.storage.test_s3 import cli, spec

    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec("s3://endless/data/*.parquet", [])))
    result = cli(tmp_path, S3(hostile.endpoint, "endless", None), "validate", "spec.yaml", CURATE_S3_MAX_OBJECTS="300")
    print(f"\n{result.stderr}")
    assert result.code == 2 and "Traceback" not in result.stderr
    assert "cannot list s3://endless/data/*.parquet: the listing went past 300 objects" in result.stderr
    assert "narrower prefix" in result.stderr


def test_another_backends_listing_is_kept_small_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend curate cannot read a page at a time (fsspec's in-memory one here) is listed by
    fsspec, then kept and bounded as S3's listing is."""
    import fsspec

    memory = fsspec.filesystem("memory")
    for name in ("a.parquet", "b.parquet", "notes.txt", "sub/c.parquet"):
        memory.pipe(f"/curate-bounds/{name}", name.encode())
    try:
        listed = remote.list_files("memory://curate-bounds/", parquet)
        here = "memory:///curate-bounds"  # the in-memory backend's names start with "/"
        assert [url for url, _ in listed] == [f"{here}/a.parquet", f"{here}/b.parquet", f"{here}/sub/c.parquet"]
        assert listed[0][1] == remote.Listed(len(b"a.parquet"), None)
        assert [url for url, _ in remote.list_files("memory://curate-bounds/*.parquet", parquet)] == [
            f"{here}/a.parquet", f"{here}/b.parquet"]
        monkeypatch.setenv("CURATE_S3_MAX_OBJECTS", "2")
        with pytest.raises(StorageError, match="memory://curate-bounds/: the listing went past 2 objects"):
            remote.list_files("memory://curate-bounds/", parquet)
    finally:
        memory.rm("/curate-bounds", recursive=True)
