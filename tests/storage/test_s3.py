"""Sources, outputs and errors on S3, against moto's S3 server on loopback (no mocks in curate:
s3fs talks HTTP to it as it would to AWS)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from curate.testing.runner import run_spec
from tests.conftest import REPO, CliResult, cli_env
from tests.storage.conftest import S3

pytestmark = pytest.mark.network


def table(rows: int, offset: int = 0) -> pl.DataFrame:
    return pl.DataFrame({"url": [f"http://example.com/{i}.jpg" for i in range(offset, offset + rows)],
                         "alt_text": [f"a photo number {i}" for i in range(offset, offset + rows)]})


def spec(source: str, outputs: list[dict], steps: list[dict] | None = None) -> dict:
    return {"name": "s3", "source": {"path": source}, "steps": steps or [{"step": "normalize_text"}],
            "outputs": outputs, "run": {"dir": "run"}}


def test_a_source_glob_over_a_bucket_prefix(s3: S3, tmp_path: Path) -> None:
    parts = [table(5), table(7, offset=5)]
    for index, part in enumerate(parts):
        path = tmp_path / f"part-{index}.parquet"
        part.write_parquet(path)
        s3.put(f"data/part-{index}.parquet", path.read_bytes())
    s3.put("data/notes.txt", b"not a table")
    s3.put("other/part-9.parquet", (tmp_path / "part-0.parquet").read_bytes())
    outputs = [{"format": "parquet", "path": "table.parquet"}, {"format": "jsonl", "path": s3.url("out/table.jsonl")}]
    local = run_spec(spec(str(tmp_path / "part-*.parquet"), outputs[:1]), tmp_path / "local")
    by_glob = run_spec(spec(s3.url("data/*.parquet"), outputs), tmp_path / "glob")
    by_prefix = run_spec(spec(s3.url("data/"), outputs[:1]), tmp_path / "prefix")  # .txt left out
    expected = (tmp_path / "local" / "run" / "table.parquet").read_bytes()
    assert pl.read_parquet(expected).height == 12
    assert (tmp_path / "glob" / "run" / "table.parquet").read_bytes() == expected
    assert (tmp_path / "prefix" / "run" / "table.parquet").read_bytes() == expected
    assert s3.get("out/table.jsonl").count(b"\n") == 12
    assert {o["path"] for o in by_glob["outputs"]} == {str(tmp_path / "glob" / "run" / "table.parquet"),
                                                       s3.url("out/table.jsonl")}
    assert local["steps"][0]["rows_out"] == by_prefix["steps"][0]["rows_out"] == 12
    # the fingerprint follows the objects' ETags: a changed object is read again, an unchanged one is not
    again = run_spec(spec(s3.url("data/*.parquet"), outputs), tmp_path / "glob")
    assert again["steps"][0]["cached"]
    path = tmp_path / "changed.parquet"
    table(3, offset=100).write_parquet(path)
    s3.put("data/part-1.parquet", path.read_bytes())
    changed = run_spec(spec(s3.url("data/*.parquet"), outputs), tmp_path / "glob")
    assert not changed["steps"][0]["cached"] and changed["steps"][0]["rows_out"] == 8


def test_large_outputs_are_multipart_uploads(s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATE_UPLOAD_PART_SIZE", str(5 * 2**20))  # S3's smallest part
    rows = 40_000
    import random

    rng = random.Random(0)
    big = pl.DataFrame({"url": [f"http://example.com/{i}.jpg" for i in range(rows)],
                        "alt_text": ["".join(rng.choices("abcdefghij klmnop", k=300)) for _ in range(rows)]})
    outputs = [{"format": "jsonl", "path": "big.jsonl"}, {"format": "jsonl", "path": s3.url("out/big.jsonl")}]
    run_spec(spec("data.parquet", outputs, steps=[]), tmp_path, tables={"data.parquet": big})
    local = (tmp_path / "run" / "big.jsonl").read_bytes()
    assert len(local) > 11 * 2**20
    assert s3.get("out/big.jsonl") == local
    etag = s3.client.head_object(Bucket=s3.bucket, Key="out/big.jsonl")["ETag"].strip('"')
    print(f"\n{len(local) / 2**20:.1f} MiB uploaded as {etag.split('-')[1]} parts")
    assert etag.endswith("-3")  # a multipart upload's ETag: md5 of the parts' md5s, "-" and their count
    assert not (tmp_path / "run" / "tmp" / "outputs").exists() or not any((tmp_path / "run" / "tmp" / "outputs").iterdir())


def test_an_export_folder_is_replaced_and_foreign_objects_are_refused(s3: S3, tmp_path: Path) -> None:
    outputs = [{"format": "parquet", "path": s3.url("out/table.parquet")},
               {"format": "jsonl", "path": s3.url("out/rows/part.jsonl")}]
    run_spec(spec("data.parquet", outputs), tmp_path, tables={"data.parquet": table(4)})
    assert s3.keys("out/") == ["out/rows/part.jsonl", "out/table.parquet"]
    s3.put("mine/readme.txt", b"someone else's")
    from curate_export.folder import LISTING

    from curate import remote
    from curate.errors import OutputError

    folder = tmp_path / "folder"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "x.txt").write_text("x")
    (folder / LISTING).write_text(json.dumps({"files": ["a/x.txt"]}))
    with pytest.raises(OutputError, match="not written by curate"):
        remote.publish(folder, s3.url("mine"), LISTING)
    remote.publish(folder, s3.url("ours"), LISTING)
    (folder / "a" / "x.txt").unlink()
    (folder / "y.txt").write_text("y")
    (folder / LISTING).write_text(json.dumps({"files": ["y.txt"]}))
    remote.publish(folder, s3.url("ours"), LISTING)
    assert s3.keys("ours/") == ["ours/" + LISTING, "ours/y.txt"]  # the old export's file is gone
    assert s3.keys("mine/") == ["mine/readme.txt"]


def cli(tmp_path: Path, s3: S3, *args: str, **env: str) -> CliResult:
    import subprocess
    import sys

    completed = subprocess.run([sys.executable, "-m", "curate.cli", *args], cwd=tmp_path, capture_output=True,
                               text=True, timeout=180, check=False,
                               env=cli_env([REPO, REPO / "plugins"], **{**s3.env(), **env}))
    return CliResult(completed)


def test_a_missing_bucket_is_a_clear_error(s3: S3, tmp_path: Path) -> None:
    table(3).write_parquet(tmp_path / "data.parquet")
    (tmp_path / "source.yaml").write_text(yaml.safe_dump(spec("s3://no-such-bucket/data/*.parquet", [])))
    (tmp_path / "output.yaml").write_text(yaml.safe_dump(
        spec("data.parquet", [{"format": "parquet", "path": "s3://no-such-bucket/out/t.parquet"}])))
    source = cli(tmp_path, s3, "run", "source.yaml", "--quiet")
    output = cli(tmp_path, s3, "run", "output.yaml", "--quiet")
    print(f"\n{source.stderr}\n{output.stderr}")
    for result in (source, output):
        assert result.code == 2 and "Traceback" not in result.stderr
        assert "bucket 'no-such-bucket' does not exist" in result.stderr and s3.endpoint in result.stderr
        assert "create the bucket, or fix the bucket name" in result.stderr
    assert "s3://no-such-bucket/data/*.parquet" in source.stderr
    assert not (tmp_path / "run" / "store").exists() or not any(
        (tmp_path / "run" / "store").glob("*/shards")), "the output's bucket is checked before any step runs"


def test_an_unreachable_endpoint_is_a_clear_error(s3: S3, tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec(s3.url("data/*.parquet"), [])))
    result = cli(tmp_path, s3, "run", "spec.yaml", "--quiet", AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
                 AWS_MAX_ATTEMPTS="1")
    print(f"\n{result.stderr}")
    assert result.code == 2 and "Traceback" not in result.stderr
    assert "cannot be reached" in result.stderr and "AWS_ENDPOINT_URL" in result.stderr


def test_permission_denied_is_a_clear_error(s3: S3, tmp_path: Path) -> None:
    """moto enforces IAM when asked (``INITIAL_NO_AUTH_ACTION_COUNT``): a user who may only read."""
    import boto3
    import moto.settings

    iam = boto3.client("iam")
    iam.create_user(UserName=f"reader-{s3.bucket}")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"], "Resource": "*"}]}
    iam.put_user_policy(UserName=f"reader-{s3.bucket}", PolicyName="read-only", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=f"reader-{s3.bucket}")["AccessKey"]
    table(3).write_parquet(tmp_path / "data.parquet")
    s3.put("data/part.parquet", (tmp_path / "data.parquet").read_bytes())
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(
        spec(s3.url("data/*.parquet"), [{"format": "parquet", "path": s3.url("out/t.parquet")}])))
    previous = moto.settings.INITIAL_NO_AUTH_ACTION_COUNT
    moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    try:
        result = cli(tmp_path, s3, "run", "spec.yaml", "--quiet", AWS_ACCESS_KEY_ID=key["AccessKeyId"],
                     AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"])
    finally:
        moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = previous
    print(f"\n{result.stderr}")
    assert result.code == 2 and "Traceback" not in result.stderr
    assert f"cannot write s3://{s3.bucket}/out/t.parquet: permission denied" in result.stderr
    assert "hint: check the credentials" in result.stderr
    assert s3.keys("out/") == []


def test_an_upload_cut_short_is_still_ours_and_the_rerun_replaces_it(s3: S3, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An export's objects go up one by one: a run killed between two of them leaves a prefix whose
    listing (written first, ``complete: false``) names them, so the re-run replaces it instead of
    refusing a prefix of unknown objects. The objects already up are not sent again: each carries
    its SHA-256 (x-amz-meta-curate-sha256), which the re-run reads."""
    from curate_export.folder import LISTING

    from curate import remote

    folder = tmp_path / "export"
    folder.mkdir()
    names = [f"{i:05d}.tar" for i in range(4)]
    for name in names:
        (folder / name).write_bytes(name.encode() * 1000)
    (folder / LISTING).write_text(json.dumps({"files": [*names, LISTING], "complete": True}))
    real = remote.upload_file
    uploaded: list[str] = []

    def killed_after_two(local: Path, url: str, metadata: dict | None = None) -> str | None:
        if len(uploaded) == 2:
            raise KeyboardInterrupt  # what SIGINT does between two objects; SIGKILL leaves the same state
        uploaded.append(url)
        return real(local, url, metadata)

    monkeypatch.setattr(remote, "upload_file", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        remote.publish(folder, s3.url("cut"), LISTING)
    assert s3.keys("cut/") == ["cut/00000.tar", "cut/00001.tar", f"cut/{LISTING}"]
    assert json.loads(s3.get(f"cut/{LISTING}"))["complete"] is False
    uploaded.clear()
    monkeypatch.setattr(remote, "upload_file", lambda local, url, metadata=None: (uploaded.append(url),
                                                                                 real(local, url, metadata))[1])
    sent = remote.publish(folder, s3.url("cut"), LISTING)
    assert uploaded == [s3.url("cut/00002.tar"), s3.url("cut/00003.tar")]
    assert sent == {"uploaded_objects": 2, "uploaded_bytes": 18000, "unchanged_objects": 2, "deleted_objects": 0}
    published = {k.removeprefix("cut/"): s3.get(k) for k in s3.keys("cut/")}
    listing = json.loads(published.pop(LISTING))
    assert published == {name: data for name, data in local_files(folder).items() if name != LISTING}
    assert listing["complete"] is True and listing["files"] == names


def local_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_endpoint_that_accepts_and_never_answers_fails_within_the_timeouts(s3: S3, tmp_path: Path) -> None:
    """A stalled endpoint held a call for ~25 connections (botocore's 5 attempts under s3fs's 5
    tries: 30 connections, 109 s here with 1 s timeouts); now 2 x 3 per call (9, 14 s). The
    connections are counted: half-second timeouts make the same count, sooner (30 still fails it)."""
    import socket
    import threading
    import time

    accepted: list[socket.socket] = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        server.settimeout(0.2)
        stop = threading.Event()

        def accept() -> None:  # take every connection, answer nothing
            while not stop.is_set():
                try:
                    accepted.append(server.accept()[0])
                except OSError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec(s3.url("data/*.parquet"), [])))
        started = time.monotonic()
        try:
            result = cli(tmp_path, s3, "validate", "spec.yaml", AWS_ENDPOINT_URL=f"http://127.0.0.1:{server.getsockname()[1]}",
                         CURATE_S3_READ_TIMEOUT="0.5", CURATE_S3_CONNECT_TIMEOUT="0.5")
        finally:
            stop.set()
            thread.join()
            for connection in accepted:
                connection.close()
    seconds = time.monotonic() - started
    assert result.code == 2 and "Traceback" not in result.stderr, result.stderr
    assert "cannot" in result.stderr and "127.0.0.1" in result.stderr, result.stderr
    assert len(accepted) <= 12, f"{len(accepted)} connections to a silent endpoint (30 before: 109 s)"
    assert seconds < 60, seconds


def test_a_timeout_variable_that_is_no_number_of_seconds_is_named(s3: S3, tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec(s3.url("data/*.parquet"), [])))
    result = cli(tmp_path, s3, "validate", "spec.yaml", CURATE_S3_READ_TIMEOUT="soon")
    assert result.code == 2 and "CURATE_S3_READ_TIMEOUT='soon' is not a number of seconds" in result.stderr, result


@pytest.mark.parametrize(("source", "output"), [
    ("data/part-0.parquet", "data/part-0.parquet"),  # over the object the run reads
    ("data/", "data/curated.parquet"),  # under the prefix it lists
    ("data/*.parquet", "data/curated.parquet"),  # where its pattern matches
])
def test_an_output_over_the_source_objects_is_refused(s3: S3, tmp_path: Path, source: str, output: str) -> None:
    path = tmp_path / "part-0.parquet"
    table(4).write_parquet(path)
    s3.put("data/part-0.parquet", path.read_bytes())
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(
        spec(s3.url(source), [{"format": "parquet", "path": s3.url(output)}], steps=[
            {"step": "filter", "params": {"where": "url LIKE '%0.jpg'"}}])))
    result = cli(tmp_path, s3, "run", "spec.yaml", "--quiet")
    assert result.code == 2, result
    assert "the run would write over the data it reads, or the next run would read the output as data" \
        in result.stderr
    assert s3.get("data/part-0.parquet") == path.read_bytes()
