"""A download pipeline with its source, outputs and image store on S3 (moto on loopback): the same
bytes as the local run, also after ``kill -9`` in the middle and a re-run."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from curate_world.generate import World, generate_world

from curate.testing.runner import read_step_output, run_spec
from tests.conftest import REPO, cli_env, kill_when_ready
from tests.download.conftest import counting_server, download_spec, url_table
from tests.storage.conftest import S3

pytestmark = [pytest.mark.network, pytest.mark.slow]
DOWNLOAD = {"allow_private_networks": True, "image_size": 32, "timeout": 3, "threads": 8, "samples_per_shard": 10}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return generate_world(tmp_path_factory.mktemp("s3-world") / "w", n=40, seed=31, fault_rate=0.0)


def pipeline(source: str, out: str) -> dict:
    return {
        "name": "s3-pipeline",
        "source": {"path": source},
        "steps": [{"step": "download", "params": DOWNLOAD}, {"step": "normalize_text"}],
        "outputs": [
            {"format": "webdataset", "path": f"{out}/wds", "params": {"caption": "alt_text", "samples_per_shard": 15}},
            {"format": "parquet", "path": f"{out}/table.parquet",
             "params": {"columns": ["uid", "url", "alt_text", "status", "width", "height", "sha256"]}},
        ],
        "run": {"dir": "run", "shard_size": 20},
    }


def _wait_until_gone(store: Path, seconds: float = 30.0) -> None:
    """Until the killed run's download workers are gone (a zombie, never reaped here, is gone)."""
    from curate.lock import pid_alive

    pids = [int(p.read_text()) for p in store.glob("*/artifacts/shard-*/worker.pid")]
    deadline = time.monotonic() + seconds
    while any(pid_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"download workers {pids} outlived their killed curate process"
        time.sleep(0.1)


def local_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_outputs_on_s3_match_the_local_run_after_a_kill(world: World, s3: S3, tmp_path: Path) -> None:
    with counting_server(world) as server:
        table = url_table(world, server.base_url)
        run_spec(pipeline("data.parquet", "out"), tmp_path / "local", tables={"data.parquet": table})
        table.write_parquet(tmp_path / "data.parquet")
        s3.put("src/data.parquet", (tmp_path / "data.parquet").read_bytes())
        work = tmp_path / "s3"
        work.mkdir()
        (work / "spec.yaml").write_text(yaml.safe_dump(pipeline(s3.url("src/*.parquet"), s3.url("out")), sort_keys=False))
        env = cli_env([REPO, REPO / "plugins"], **s3.env())
        # kill -9 once the download step has finished its first shard of two
        kill_when_ready([sys.executable, "-m", "curate.cli", "run", "spec.yaml", "--quiet"], work, env,
                        lambda: list((work / "run" / "store").glob("*/shards/00000.json")), timeout=300, group=True,
                        what="the download finished a shard")
        assert s3.keys("out/") == []  # nothing published by the killed run
        # the download worker notices its parent is gone and exits (as in tests/download/test_resume.py)
        _wait_until_gone(work / "run" / "store")
        resumed = subprocess.run([sys.executable, "-m", "curate.cli", "run", "spec.yaml", "--quiet"], cwd=work,
                                 env=env, capture_output=True, text=True, timeout=300, check=False)
        requests = dict(server.counts)
    assert resumed.returncode == 0, resumed.stderr
    local = local_files(tmp_path / "local" / "run" / "out" / "wds")
    assert len(local) >= 4  # 40 images in 15-sample tars: 3 tars, sizes.json and the listing
    remote = {key.removeprefix("out/wds/"): s3.get(key) for key in s3.keys("out/wds/")}
    # the listing published is the local one plus each object's checksum, size and ETag (curate.publish)
    listing = json.loads(remote.pop("_CURATE_EXPORT.json"))
    objects = listing.pop("objects")
    assert listing == json.loads(local.pop("_CURATE_EXPORT.json"))
    assert remote == local
    assert {name: (record["sha256"], record["size"]) for name, record in objects.items()} == \
        {name: (hashlib.sha256(data).hexdigest(), len(data)) for name, data in local.items()}
    assert s3.get("out/table.parquet") == (tmp_path / "local" / "run" / "out" / "table.parquet").read_bytes()
    # the first shard was not fetched again after the kill: 40 URLs, fetched once locally and
    # at most once more over the killed and the resumed S3 runs
    assert max(requests.values()) == 2 and len(requests) == 40
    print(f"\n{len(remote) + 1} export objects identical to the local run's; requests per URL over 3 runs: "
          f"{sorted(set(requests.values()))}")


def test_the_image_store_on_s3(world: World, s3: S3, tmp_path: Path) -> None:
    params = {**DOWNLOAD, "image_store": s3.url("images")}
    with counting_server(world) as server:
        table = url_table(world, server.base_url, rows=12)
        first = run_spec(download_spec(params), tmp_path / "first", tables={"data.parquet": table})
        fetched = sum(server.counts.values())
        second = run_spec(download_spec(params), tmp_path / "second", tables={"data.parquet": table})
        assert sum(server.counts.values()) == fetched == 12
    rows1, rows2 = read_step_output(first, "download"), read_step_output(second, "download")
    assert rows1["sha256"].to_list() == rows2["sha256"].to_list()
    assert set(rows2["image_origin"]) == {"store"} and set(rows2["status"]) == {"success"}
    assert len(s3.keys("images/v1/records/")) == 12 and len(s3.keys("images/v1/blobs/")) == 12


def test_the_image_store_on_s3_reads_blobs_bounded_and_checked(s3: S3) -> None:
    """Objects are read up to max_bytes (a ranged GET, not the whole object) and trusted only if
    their bytes hash to their name; names the store never writes are not requested at all."""
    import hashlib

    from curate_download.imagestore import ImageStore

    store = ImageStore(s3.url("images"))
    good, big = b"\xff\xd8good", b"\xff\xd8" + b"b" * 5000
    names = {what: hashlib.sha256(data).hexdigest() + ".jpg" for what, data in
             {"good": good, "big": big, "forged": b"forged", "absent": b"absent"}.items()}
    for what, data in {"good": good, "big": big, "forged": b"\xff\xd8not those bytes"}.items():
        s3.put(f"images/v1/blobs/{names[what][:2]}/{names[what]}", data)
    s3.put("secret", b"not an image")
    found, rejected = store.blobs([*names.values(), "../../../secret"], max_bytes=1024)
    assert found == {names["good"]: good}
    assert "longer than 1024 bytes" in rejected[names["big"]]
    assert "do not hash to its name" in rejected[names["forged"]]
    assert "64 lowercase hex" in rejected["../../../secret"] and names["absent"] not in rejected
