"""Uploads to S3 (an output, an export's files): whole objects, a part at a time, each request
within its deadline. Against moto's S3 server on loopback, directly or behind a proxy that reads
an upload a few bytes at a time or sends an answer back that way (``slow_proxy``)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from curate import remote
from curate.errors import StorageError
from tests.storage.conftest import S3
from tests.storage.hostile_s3 import DRIP_CAP_SECONDS
from tests.storage.slow_proxy import Rule, serve_slow_proxy

pytestmark = pytest.mark.network
PART = 5 * 2**20  # S3's smallest part, and CURATE_UPLOAD_PART_SIZE's


def _etag(data: bytes, part: int) -> str:
    """The ETag S3 gives ``data`` put in one request (below ``part`` bytes), or uploaded in
    parts of ``part`` bytes: the md5 of the parts' md5s, '-' and their count."""
    if len(data) < part:
        return hashlib.md5(data).hexdigest()
    parts = [data[start:start + part] for start in range(0, len(data), part)]
    return hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + f"-{len(parts)}"


def _uploads(s3: S3) -> list[str]:
    """The multipart uploads begun in the bucket and neither completed nor aborted."""
    return [u["Key"] for u in s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", [])]


@pytest.mark.parametrize("size", [0, 1000, PART - 1, PART, 2 * PART + 123])
def test_an_upload_is_the_file_in_parts_of_the_part_size(s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        size: int) -> None:
    """One PUT below the part size, parts of the part size from it on (the ETag says which): the
    object is the file, byte for byte, as fsspec's file object wrote it."""
    monkeypatch.setenv("CURATE_UPLOAD_PART_SIZE", str(PART))
    local = tmp_path / "data.bin"
    local.write_bytes(data := os.urandom(size))
    remote.upload_file(local, s3.url("out/data.bin"))
    assert s3.get("out/data.bin") == data
    assert s3.client.head_object(Bucket=s3.bucket, Key="out/data.bin")["ETag"].strip('"') == _etag(data, PART)
    assert _uploads(s3) == []


def _drained(part: str) -> Rule:
    """A rule for the proxy: the upload's request ``part`` (a single PUT, or part 2) read slowly."""
    def rule(method: str, path: str) -> str | None:
        if part == "put" and method == "PUT" and "uploadId=" not in path:
            return "drain"
        if part == "part 2" and method == "PUT" and "partNumber=2&" in path:
            return "drain"
        return None
    return rule


def _dripped(*requests: str) -> Rule:
    """A rule for the proxy: the answers to these requests of a multipart upload sent slowly."""
    def rule(method: str, path: str) -> str | None:
        kind = {"POST": "complete" if "uploadId=" in path else "initiate", "DELETE": "abort"}.get(method)
        return "drip" if kind in requests else None
    return rule


# rule, file size, what the error says, whether an upload id came back (so the upload is aborted),
# what is left at the key
CASES = {
    "put drained": (_drained("put"), 4000, "write", False, None),
    "part drained": (_drained("part 2"), 2 * PART + 123, "write part 2 of 3 of", True, None),
    "initiate dripped": (_dripped("initiate"), PART + 1, "start writing", False, None),
    # S3 completed the upload, its answer did not come: the object is whole, and there is nothing to abort
    "complete dripped": (_dripped("complete"), PART + 1, "finish writing", True, "whole"),
    "complete and abort dripped": (_dripped("complete", "abort"), PART + 1, "finish writing", True, "whole"),
}


DEADLINE = 4


@pytest.fixture
def fast_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATE_UPLOAD_PART_SIZE", str(PART))
    # 4 s: a request the proxy passes on untouched finishes well within it on 2 loaded cores (1 s
    # did not, once); a dripped answer (hundreds of bytes at 20 a second) takes far longer
    monkeypatch.setenv("CURATE_S3_CALL_DEADLINE", str(DEADLINE))
    monkeypatch.setenv("CURATE_S3_MIN_BYTES_PER_SECOND", str(5 * 2**20))  # a part's 5 MiB: 1 s more


@pytest.mark.parametrize("case", list(CASES))
def test_an_upload_read_or_answered_slowly_stops_at_the_deadline(s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                fast_parts: None, case: str) -> None:
    """botocore's timeouts bound each wait to send or to read the next bytes, so an endpoint that
    read an upload a few bytes at a time, or answered that way, held the run's upload for as long
    as it went on (for ever). Now each request of the upload has its deadline; the upload fails
    saying which URL and which variable to raise, leaves no object (or the whole one, where S3
    completed it) and no multipart upload behind (it is aborted, within its own deadline)."""
    rule, size, doing, begun, left = CASES[case]
    local = tmp_path / "data.bin"
    local.write_bytes(data := os.urandom(size))
    url = s3.url("out/data.bin")
    with serve_slow_proxy(s3.endpoint, rule) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        started = time.monotonic()
        with pytest.raises(StorageError) as failure:
            remote.upload_file(local, url)
        print(f"\n{case}: failed after {time.monotonic() - started:.1f} s: {failure.value}")
        outcomes = proxy.outcomes
    message = failure.value.message
    assert f"cannot {doing} {url}: the storage endpoint did not finish within" in message, message
    assert f"endpoint {proxy.endpoint}" in message and f"CURATE_S3_CALL_DEADLINE={DEADLINE} s a request" in message
    assert ("and 5,242,880 bytes at CURATE_S3_MIN_BYTES_PER_SECOND" in message) == (case == "part drained")
    assert "raise CURATE_S3_CALL_DEADLINE" in failure.value.hint
    assert ("could not be aborted" in failure.value.hint) == (case == "complete and abort dripped")
    # no request waited out the proxy's cap: each was given up at its deadline
    assert not [o for o in outcomes if o[2] == "capped"], outcomes
    assert ("DELETE" in {method for method, _ in proxy.requests}) == begun
    assert s3.keys("out/") == ([] if left is None else ["out/data.bin"])
    if left == "whole":
        assert s3.get("out/data.bin") == data
    # moto began the upload whose id never came back; nothing else is left
    assert _uploads(s3) == ([] if case != "initiate dripped" else ["out/data.bin"])
    assert DRIP_CAP_SECONDS > 3 * DEADLINE  # a client without a deadline waits well past its deadline


def test_a_part_refused_once_leaves_no_object(s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fsspec's file object, left on an error, was closed, and closing it sent the part again and
    completed the upload: a file of three parts whose second was refused once became an object of
    its first two (10 MiB of 15), there for every reader, while the run failed. Now the upload is
    aborted and nothing is left."""
    monkeypatch.setenv("CURATE_UPLOAD_PART_SIZE", str(PART))
    refused: list[str] = []

    def rule(method: str, path: str) -> str | None:
        if method == "PUT" and "partNumber=2&" in path and not refused:
            refused.append(path)
            return "refuse"
        return None

    local = tmp_path / "data.bin"
    local.write_bytes(os.urandom(3 * PART))
    url = s3.url("out/data.bin")
    with serve_slow_proxy(s3.endpoint, rule) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        with pytest.raises(StorageError) as failure:
            remote.upload_file(local, url)
    assert s3.keys("out/") == [] and _uploads(s3) == []
    assert refused and ("DELETE" in {method for method, _ in proxy.requests})
    assert f"cannot write part 2 of 3 of {url}: permission denied" in failure.value.message


@pytest.mark.parametrize("request_kind, said", [("initiate", "start writing"), ("part", "write part 1 of 2 of")])
def test_an_answer_without_an_upload_id_or_etag_is_named(s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          request_kind: str, said: str) -> None:
    """An endpoint that answers CreateMultipartUpload without an upload id, or UploadPart without
    an ETag, is not S3: said so, with what was being done (it was a KeyError)."""
    monkeypatch.setenv("CURATE_UPLOAD_PART_SIZE", str(PART))

    def rule(method: str, path: str) -> str | None:
        initiate, part = method == "POST" and path.endswith("?uploads"), method == "PUT" and "partNumber=" in path
        return "hollow" if (initiate, part)[request_kind == "part"] else None

    local = tmp_path / "data.bin"
    local.write_bytes(os.urandom(PART + 1))
    url = s3.url("out/data.bin")
    with serve_slow_proxy(s3.endpoint, rule) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        with pytest.raises(StorageError) as failure:
            remote.upload_file(local, url)
    name = "UploadId" if request_kind == "initiate" else "ETag"
    assert failure.value.message == f"cannot {said} {url}: the storage endpoint's answer has no {name}"
    assert "check AWS_ENDPOINT_URL" in failure.value.hint
    assert s3.keys("out/") == [] and _uploads(s3) == []  # the part's upload is aborted
