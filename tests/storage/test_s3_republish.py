"""Re-running an export to object storage sends only what changed (curate.publish), against
moto's S3 server on loopback, behind a proxy that records every request (``slow_proxy``).

A cached re-run uploaded every object again: each object's Last-Modified and ETag new, so every
sync downstream copied them all again. Now an object holding the bytes of the new export is left
as it was; changed ones are uploaded, those the new export lacks deleted after, objects curate did
not write never touched, and a cut-short upload is finished by the next run without sending again
what it had sent."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate import publish, remote
from curate.errors import CurateError, OutputError
from curate.testing.runner import run_spec
from tests.conftest import REPO, cli_env, kill_when_ready
from tests.export.conftest import make_store
from tests.storage.conftest import S3
from tests.storage.slow_proxy import Rule, SlowProxy, serve_slow_proxy

pytestmark = pytest.mark.network
LISTING = "_CURATE_EXPORT.json"
PART = 5 * 2**20
ALL, FIRST_12 = "uid IS NOT NULL", "uid < '000000000000000c'"  # 24 rows: shards of 5, 5, 5, 5, 4; or 5, 5, 2


@contextmanager
def proxied(s3: S3, monkeypatch: pytest.MonkeyPatch, rule: Rule | None = None) -> Iterator[SlowProxy]:
    """curate's requests go through a proxy that records them (and does to them what ``rule`` says)."""
    with serve_slow_proxy(s3.endpoint, rule or (lambda method, path: None)) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        yield proxy
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)


def writes(sent: list[tuple[str, str, int]], bucket: str) -> list[str]:
    """The requests that write (PUT an object or a part, POST a multipart upload or a delete,
    DELETE), as ``METHOD key`` in the order sent."""
    return [f"{method} {path.removeprefix(f'/{bucket}').lstrip('/').split('?')[0] or path.split('?')[-1]}"
            for method, path, _ in sent if method in ("PUT", "POST", "DELETE")]


def versions(s3: S3, prefix: str) -> dict[str, tuple[str, str]]:
    """Each object's ETag and Last-Modified (moto's, to the millisecond): what a sync compares."""
    pages = s3.client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix)
    return {item["Key"]: (item["ETag"], item["LastModified"].isoformat())
            for page in pages for item in page.get("Contents", [])}


def stored_table(store: Path) -> pl.DataFrame:
    """24 rows, each with its JPEG in ``store`` (make_store's row without an image left out)."""
    table = make_store(store, 24, png_every=0).filter(pl.col("image").is_not_null())
    return table.with_columns(pl.format("https://example.com/{}.jpg", pl.col("uid")).alias("url"))


@pytest.fixture
def exports(s3: S3, tmp_path: Path):
    """``export(where)``: a run of a filter over 24 stored images into a webdataset and a parquet
    output on S3 (``out/wds``, ``out/table.parquet``); its manifest."""
    store = tmp_path / "store"
    table = stored_table(store)
    first = [True]

    def export(where: str) -> dict:
        spec = {"name": "republish", "source": {"path": "data.parquet"},
                "steps": [{"step": "filter", "params": {"where": where}}],
                "outputs": [{"format": "webdataset", "path": s3.url("out/wds"),
                             "params": {"store_dir": str(store), "samples_per_shard": 5}},
                            {"format": "parquet", "path": s3.url("out/table.parquet")}],
                "run": {"dir": "run"}}
        tables = {"data.parquet": table} if first[0] else None
        first[0] = False
        return run_spec(spec, tmp_path / "work", tables=tables)

    return export


def test_a_cached_rerun_sends_no_object_and_leaves_every_object_as_it_was(
        s3: S3, exports, monkeypatch: pytest.MonkeyPatch) -> None:
    exports(ALL)
    before = versions(s3, "out/")
    assert len(before) == 8  # 5 tars, sizes.json, the listing, the parquet
    with proxied(s3, monkeypatch) as proxy:
        again = exports(ALL)
    assert all(step["cached"] for step in again["steps"])
    assert writes(proxy.sent, s3.bucket) == [], proxy.sent
    assert sum(size for _, _, size in proxy.sent) == 0
    # the whole re-run's storage traffic: the buckets checked before the steps, the export's listing
    # read and its prefix listed, the parquet object's HEAD
    print(f"\ncached re-run: {len(proxy.sent)} requests: {[f'{m} {p}' for m, p, _ in proxy.sent]}")
    assert len(proxy.sent) == 5
    assert versions(s3, "out/") == before
    wds, table = again["outputs"]
    assert wds["published"] == {"uploaded_objects": 0, "uploaded_bytes": 0, "unchanged_objects": 6,
                                "deleted_objects": 0}
    assert table["published"]["unchanged_objects"] == 1 and table["published"]["uploaded_objects"] == 0


def test_a_narrower_export_rewrites_and_deletes_exactly_what_changed_and_leaves_foreign_objects(
        s3: S3, exports, monkeypatch: pytest.MonkeyPatch) -> None:
    exports(ALL)
    s3.put("out/wds/notes/readme.txt", b"someone else's notes")  # not named by curate's listing
    before = versions(s3, "out/")
    with proxied(s3, monkeypatch) as proxy:
        narrower = exports(FIRST_12)
    # the listing first (complete: false), the changed tar and sizes.json, one delete request for
    # the two tars the export no longer has, the listing as written; the parquet changed too
    assert writes(proxy.sent, s3.bucket) == [
        f"PUT out/wds/{LISTING}", "PUT out/wds/00002.tar", "PUT out/wds/sizes.json", "POST delete",
        f"PUT out/wds/{LISTING}", "PUT out/table.parquet"]
    deleted = next(body for method, path, body in proxy.sent if method == "POST")
    assert deleted > 0
    after = versions(s3, "out/")
    assert sorted(after) == ["out/table.parquet", *(f"out/wds/{n}" for n in (
        "00000.tar", "00001.tar", "00002.tar", LISTING, "notes/readme.txt", "sizes.json"))]
    same = {key for key in after if after[key] == before.get(key)}
    assert same == {"out/wds/00000.tar", "out/wds/00001.tar", "out/wds/notes/readme.txt"}
    assert s3.get("out/wds/notes/readme.txt") == b"someone else's notes"
    listing = json.loads(s3.get(f"out/wds/{LISTING}"))
    assert listing["complete"] is True and listing["files"] == ["00000.tar", "00001.tar", "00002.tar", "sizes.json"]
    assert sorted(listing["objects"]) == listing["files"]
    assert listing["objects"]["00000.tar"]["etag"] == after["out/wds/00000.tar"][0].strip('"')
    assert narrower["outputs"][0]["published"] == {"uploaded_objects": 2, "uploaded_bytes": 10288,
                                                   "unchanged_objects": 2, "deleted_objects": 2}


def test_an_export_that_would_write_over_an_object_curate_did_not_write_is_refused(
        s3: S3, exports, monkeypatch: pytest.MonkeyPatch) -> None:
    """The listing names the objects curate wrote; an object at a name the export writes that it
    does not name is someone else's, and is not overwritten (nor is anything else sent)."""
    exports(FIRST_12)
    s3.put("out/wds/00004.tar", b"the user's own shard")
    before = versions(s3, "out/wds/")
    with proxied(s3, monkeypatch) as proxy, pytest.raises(OutputError) as refused:
        exports(ALL)
    assert "holds objects curate did not write (its _CURATE_EXPORT.json does not name them) where the export " \
           "writes: 00004.tar" in refused.value.message
    assert "move those objects away" in refused.value.hint
    assert writes(proxy.sent, s3.bucket) == [] and versions(s3, "out/wds/") == before


def test_a_failed_upload_leaves_a_prefix_marked_incomplete_and_the_next_run_sends_only_the_rest(
        s3: S3, exports, monkeypatch: pytest.MonkeyPatch) -> None:
    """The endpoint refuses the fourth tar: the run fails, the listing says ``complete: false``,
    and the next run uploads the objects that are not up, not the three that are (each carries
    its SHA-256, read with one HEAD)."""
    def refuse_shard_3(method: str, path: str) -> str | None:
        return "refuse" if method == "PUT" and path.endswith("/out/wds/00003.tar") else None

    with proxied(s3, monkeypatch, refuse_shard_3), pytest.raises(CurateError, match="permission denied"):
        exports(ALL)
    assert json.loads(s3.get(f"out/wds/{LISTING}"))["complete"] is False
    assert s3.keys("out/wds/") == [f"out/wds/{n}" for n in ("00000.tar", "00001.tar", "00002.tar", LISTING)]
    with proxied(s3, monkeypatch) as proxy:
        exports(ALL)
    assert writes(proxy.sent, s3.bucket) == [
        f"PUT out/wds/{LISTING}", "PUT out/wds/00003.tar", "PUT out/wds/00004.tar", "PUT out/wds/sizes.json",
        f"PUT out/wds/{LISTING}", "PUT out/table.parquet"]
    heads = [path for method, path, _ in proxy.sent if method == "HEAD"]
    assert len(heads) == 4  # 00000–00002.tar, whose upload the listing has no record of, and the parquet
    listing = json.loads(s3.get(f"out/wds/{LISTING}"))
    assert listing["complete"] is True and len(listing["objects"]) == 6


@pytest.mark.slow
def test_a_run_killed_mid_upload_is_recognised_and_finished_by_the_next(s3: S3, tmp_path: Path) -> None:
    """SIGKILL while the third tar's PUT is on its way (the proxy reads it slowly): the prefix
    holds two tars and a listing saying ``complete: false``; the next run uploads the rest only."""
    store = tmp_path / "store"
    table = stored_table(store)
    table.write_parquet(tmp_path / "data.parquet")
    spec = {"name": "killed", "source": {"path": "data.parquet"}, "steps": [{"step": "normalize_text"}],
            "outputs": [{"format": "webdataset", "path": s3.url("out/wds"),
                         "params": {"store_dir": str(store), "samples_per_shard": 5}}],
            "run": {"dir": "run", "report": False}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))

    def drain_shard_2(method: str, path: str) -> str | None:
        return "drain" if method == "PUT" and path.endswith("/out/wds/00002.tar") else None

    command = [sys.executable, "-m", "curate.cli", "run", "spec.yaml", "--quiet"]
    with serve_slow_proxy(s3.endpoint, drain_shard_2) as proxy:
        env = cli_env([REPO, REPO / "plugins"], **{**s3.env(), "AWS_ENDPOINT_URL": proxy.endpoint})
        kill_when_ready(command, tmp_path, env, lambda: any(
            path.endswith("/00002.tar") for _, path in proxy.requests), timeout=120, what="the third tar's upload")
    assert json.loads(s3.get(f"out/wds/{LISTING}"))["complete"] is False
    assert s3.keys("out/wds/") == [f"out/wds/{n}" for n in ("00000.tar", "00001.tar", LISTING)]
    with serve_slow_proxy(s3.endpoint, lambda method, path: None) as proxy:
        env = cli_env([REPO, REPO / "plugins"], **{**s3.env(), "AWS_ENDPOINT_URL": proxy.endpoint})
        again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
                               check=False)
    assert again.returncode == 0, again.stderr
    assert writes(proxy.sent, s3.bucket) == [f"PUT out/wds/{LISTING}", *(f"PUT out/wds/{n}" for n in (
        "00002.tar", "00003.tar", "00004.tar", "sizes.json")), f"PUT out/wds/{LISTING}"]
    local = run_spec({**spec, "outputs": [{**spec["outputs"][0], "path": "wds"}]}, tmp_path / "local",
                     tables={"data.parquet": table})
    local = tmp_path / "local" / "run" / "wds"
    for path in local.iterdir():
        if path.name != LISTING:
            assert s3.get(f"out/wds/{path.name}") == path.read_bytes(), path.name
    assert json.loads(s3.get(f"out/wds/{LISTING}"))["complete"] is True


def _folder(tmp_path: Path, files: dict[str, bytes], name: str = "export") -> Path:
    folder = tmp_path / name
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for file, data in files.items():
        (folder / file).parent.mkdir(parents=True, exist_ok=True)
        (folder / file).write_bytes(data)
    (folder / LISTING).write_text(json.dumps({"complete": True, "files": sorted(files), "format": "test"}))
    return folder


def test_a_multipart_object_is_left_as_it_was_and_one_rewritten_by_someone_else_is_sent_again(
        s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A multipart upload's ETag is not the MD5 of the object: it is compared as S3 gave it for
    curate's upload, never computed. An object rewritten since with as many bytes (a new ETag, no
    curate metadata) is someone's change, and is replaced; size alone is not trusted."""
    monkeypatch.setenv("CURATE_UPLOAD_PART_SIZE", str(PART))
    big = os.urandom(PART + 1)
    folder = _folder(tmp_path, {"big.tar": big, "small.json": b"{}"})
    publish.publish(folder, s3.url("mp"), LISTING)
    assert s3.client.head_object(Bucket=s3.bucket, Key="mp/big.tar")["ETag"].strip('"').endswith("-2")
    with proxied(s3, monkeypatch) as proxy:
        assert publish.publish(folder, s3.url("mp"), LISTING)["uploaded_objects"] == 0
    assert writes(proxy.sent, s3.bucket) == []
    s3.put("mp/big.tar", bytes(len(big)))  # the same size, other bytes
    with proxied(s3, monkeypatch) as proxy:
        sent = publish.publish(folder, s3.url("mp"), LISTING)
    assert sent == {"uploaded_objects": 1, "uploaded_bytes": PART + 1, "unchanged_objects": 1, "deleted_objects": 0}
    assert s3.get("mp/big.tar") == big
    assert [w for w in writes(proxy.sent, s3.bucket) if LISTING not in w] == [
        "POST mp/big.tar", "PUT mp/big.tar", "PUT mp/big.tar", "POST mp/big.tar"]  # begin, 2 parts, complete


@pytest.mark.parametrize("name", ["table.parquet", "rows.jsonl"])
def test_a_single_file_output_is_sent_only_when_its_bytes_changed(
        s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("CURATE_UPLOAD_PART_SIZE", str(PART))
    local = tmp_path / name
    url = s3.url(f"single/{name}")
    for data in (b"first", os.urandom(PART + 3)):  # one PUT, then a multipart upload
        local.write_bytes(data)
        assert publish.publish(local, url, LISTING)["uploaded_objects"] == 1
        before = versions(s3, "single/")
        with proxied(s3, monkeypatch) as proxy:
            assert publish.publish(local, url, LISTING) == {"uploaded_objects": 0, "uploaded_bytes": 0,
                                                            "unchanged_objects": 1, "deleted_objects": 0}
        assert [method for method, _, _ in proxy.sent] == ["HEAD"]
        assert versions(s3, "single/") == before
    s3.put(f"single/{name}", b"x" * local.stat().st_size)  # rewritten by someone else, as many bytes
    assert publish.publish(local, url, LISTING)["uploaded_objects"] == 1
    assert s3.get(f"single/{name}") == local.read_bytes()


def test_a_listing_of_an_earlier_curate_without_checksums_is_sent_once_more(
        s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Objects an earlier curate published (a listing without ``objects``, no metadata) cannot be
    told unchanged: they are sent once, and left as they are from then on."""
    files = {"00000.tar": b"a" * 600, "sizes.json": b"{}"}
    for name, data in files.items():
        s3.put(f"old/{name}", data)
    s3.put(f"old/{LISTING}", json.dumps({"complete": True, "files": sorted(files)}).encode())
    folder = _folder(tmp_path, files)
    assert publish.publish(folder, s3.url("old"), LISTING)["uploaded_objects"] == 2
    with proxied(s3, monkeypatch) as proxy:
        assert publish.publish(folder, s3.url("old"), LISTING)["uploaded_objects"] == 0
    assert writes(proxy.sent, s3.bucket) == []


# -- a property over sequences of exports --------------------------------------------------------
NAMES = ["00000.tar", "00001.tar", "sizes.json", "images/a.jpg", "images/b.jpg"]
# equal sizes with other bytes ("ab", "ba") among them: a size is never taken for the content
CONTENTS = [b"", b"ab", b"ba", b"abc", b"x" * 700]
FOREIGN = ["notes.txt", "theirs/data.bin"]  # never a name an export writes
exports_strategy = st.lists(st.tuples(st.dictionaries(st.sampled_from(NAMES), st.sampled_from(CONTENTS)),
                                      st.none() | st.integers(0, 4),  # the upload that fails (None: none)
                                      st.dictionaries(st.sampled_from(FOREIGN), st.binary(max_size=3))),
                            min_size=1, max_size=4)
_prefixes = itertools.count()
_upload_file = remote.upload_file  # before any test patches it


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=exports_strategy)
def test_the_prefix_ends_equal_to_the_latest_export_and_the_foreign_objects(
        s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sequence) -> None:
    """Over any sequence of exports (some cut short by a failed upload, someone else putting
    objects under the prefix between them): after each export that finished, the prefix holds that
    export's objects, byte for byte, the foreign objects and the listing (complete); after one cut
    short, its listing says ``complete: false``. Every export uploads exactly the objects whose
    bytes the prefix does not already hold, whatever the one before it left."""
    prefix = f"p{next(_prefixes)}"
    url = s3.url(prefix)
    uploads: list[str] = []
    fail_at: list[int | None] = [None]

    def upload(local: Path, target: str, metadata: dict | None = None) -> str | None:
        if fail_at[0] is not None and len(uploads) == fail_at[0]:
            raise OSError("the connection was reset (injected)")
        uploads.append(target.removeprefix(url + "/"))
        return _upload_file(local, target, metadata)

    monkeypatch.setattr(remote, "upload_file", upload)
    foreign: dict[str, bytes] = {}
    for index, (files, failure, theirs) in enumerate(sequence):
        held = {key.removeprefix(f"{prefix}/"): s3.get(key) for key in s3.keys(f"{prefix}/")}
        needed = [name for name in sorted(files) if held.get(name) != files[name]]
        uploads.clear()
        fail_at[0] = failure
        folder = _folder(tmp_path, files, f"export-{index}")
        try:
            sent = publish.publish(folder, url, LISTING)
        except OSError:
            assert failure is not None and failure < len(needed)
            assert uploads == needed[:failure]
            assert json.loads(s3.get(f"{prefix}/{LISTING}"))["complete"] is False
        else:
            assert failure is None or failure >= len(needed)
            assert uploads == needed and sent["uploaded_objects"] == len(needed)
            now = {key.removeprefix(f"{prefix}/"): s3.get(key) for key in s3.keys(f"{prefix}/")}
            listing = json.loads(now.pop(LISTING))
            assert now == {**foreign, **files}
            assert listing["complete"] is True and listing["files"] == sorted(files)
        # someone else's objects, put under the prefix once it is curate's (before, it is refused)
        for name, data in theirs.items():
            s3.put(f"{prefix}/{name}", data)
        foreign.update(theirs)


def test_stale_objects_are_deleted_by_their_exact_keys_never_as_a_glob(s3: S3, tmp_path: Path) -> None:
    """fsspec's rm expanded ``*``, ``?`` and ``[…]`` in the paths it was given: a re-export to the
    prefix ``data[v2]`` deleted ``datav/…`` and ``data2/…`` (someone else's objects) and left its
    own stale object; a listing naming an object ``*`` deleted every object just uploaded, and the
    listing then said the export was complete."""
    for key in ("datav/00001.tar", "data2/00001.tar"):
        s3.put(key, b"theirs")
    url = s3.url("data[v2]")
    publish.publish(_folder(tmp_path / "a", {"00000.tar": b"a", "00001.tar": b"b"}), url, LISTING)
    assert publish.publish(_folder(tmp_path / "b", {"00000.tar": b"a"}), url, LISTING)["deleted_objects"] == 1
    assert s3.keys() == ["data2/00001.tar", "data[v2]/00000.tar", f"data[v2]/{LISTING}", "datav/00001.tar"]

    s3.put("out/*", b"odd")  # an object named "*", and a listing (anyone could have written it) naming it
    s3.put(f"out/{LISTING}", json.dumps({"complete": True, "files": ["*"]}).encode())
    publish.publish(_folder(tmp_path / "c", {"00000.tar": b"a", "00001.tar": b"b"}), s3.url("out"), LISTING)
    assert s3.keys("out/") == ["out/00000.tar", "out/00001.tar", f"out/{LISTING}"]


def test_a_listed_object_someone_rewrote_since_is_not_deleted_as_stale(s3: S3, tmp_path: Path) -> None:
    """The listing names an object curate uploaded; someone wrote their own bytes at that key
    since. A narrower export deleted it with the stale objects: it is theirs now, and left."""
    url = s3.url("r")
    publish.publish(_folder(tmp_path / "a", {"0.tar": b"a", "1.tar": b"b", "2.tar": b"c"}), url, LISTING)
    s3.put("r/1.tar", b"someone else's newer data")
    sent = publish.publish(_folder(tmp_path / "b", {"0.tar": b"a"}), url, LISTING)
    assert sent["deleted_objects"] == 1 and s3.keys("r/") == ["r/0.tar", "r/1.tar", f"r/{LISTING}"]
    assert s3.get("r/1.tar") == b"someone else's newer data"
    assert json.loads(s3.get(f"r/{LISTING}"))["files"] == ["0.tar"]
