"""Keys do not depend on sharding; a killed download resumes without fetching finished work again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import yaml
from curate_download import store
from curate_world.generate import World

from curate.images import iter_images
from curate.testing.runner import read_step_output, run_spec
from tests.conftest import cli_env, kill_when_ready
from tests.download.conftest import TIMEOUT, counting_server, download_spec, run_download, url_table
from tests.download.processes import descendants

pytestmark = pytest.mark.network
ROOT = Path(__file__).resolve().parents[2]  # this checkout, for the curate CLI's subprocess


def image_bytes(manifest: dict, rows: pl.DataFrame) -> dict[str, bytes]:
    return dict(zip(rows["uid"], iter_images(rows["image"], manifest["store_dir"], as_bytes=True), strict=True))


def test_keys_do_not_depend_on_shard_sizes(clean_world: World, tmp_path: Path) -> None:
    params = {"allow_private_networks": True, "timeout": TIMEOUT, "retries": 1, "image_size": 32}
    with counting_server(clean_world) as server:
        table = url_table(clean_world, server.base_url, rows=40)
        one, whole = run_download(tmp_path / "one", table, {**params, "samples_per_shard": 1000})
        # the other run also stores files instead of tars: keys and bytes must not care either
        two, split = run_download(tmp_path / "split", table, {**params, "samples_per_shard": 7, "output_format": "files"},
                                  shard_size=20)
    assert set(whole["status"]) == set(split["status"]) == {"success"}
    assert whole["uid"].to_list() == split["uid"].to_list()
    for rows in (whole, split):
        assert (rows["image"].struct.field("key") == rows["uid"]).all()
    assert whole["image"].struct.field("shard").n_unique() == 1
    assert split["image"].struct.field("shard").n_unique() == 6  # 2 input shards x 3 folders of <= 7
    assert all(Path(two["store_dir"], shard).is_dir() for shard in split["image"].struct.field("shard").unique())
    assert image_bytes(one, whole) == image_bytes(two, split)


def _finished_parts(step_dir: Path) -> dict[str, list[str]]:
    """uid lists of every img2dataset part that has its stats file (done, per img2dataset)."""
    out = {}
    for shard_dir in sorted(step_dir.glob("artifacts/shard-*")):
        for part in range(100):
            if store.stats_path(shard_dir, part).exists():
                out[f"{shard_dir.name}/{part}"] = pl.read_parquet(store.results_path(shard_dir, part))["uid"].to_list()
    return out


def _wait_until_gone(pids: list[int], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return
        time.sleep(0.1)
    raise AssertionError(f"download workers {alive} outlived their killed curate process")


def test_a_killed_download_resumes_without_refetching(stalling_world: World, tmp_path: Path) -> None:
    """Two input shards of two img2dataset parts each; every part holds a slow URL, so it lasts
    a timeout. SIGKILL ``curate run`` as soon as the second shard's first part is done: the first
    shard is finished (engine marker), the second half done. Run again: every healthy URL of a
    part finished before the kill was fetched exactly once, over both runs, and the rest at least
    once: both kinds of resume (the engine's shards, img2dataset's parts) in one re-run."""
    params = {"allow_private_networks": True, "timeout": TIMEOUT, "image_size": 32, "samples_per_shard": 20}
    with counting_server(stalling_world) as server:
        table = url_table(stalling_world, server.base_url, rows=80)
        parts = [table.slice(start, 20)["gt_fault"] for start in range(0, table.height, 20)]
        assert all("slow" in part.to_list() for part in parts)
        table.write_parquet(tmp_path / "data.parquet")
        (tmp_path / "spec.yaml").write_text(yaml.safe_dump(download_spec(params, shard_size=40), sort_keys=False))
        def second_shard_started() -> Path | None:  # its first part done
            step_dir = _step_dir(tmp_path / "run" / "store")
            done = step_dir is not None and store.stats_path(step_dir / "artifacts" / "shard-00001", 0).exists()
            return step_dir if done else None

        step_dir = kill_when_ready([sys.executable, "-m", "curate.cli", "run", "spec.yaml", "--quiet"], tmp_path,
                                   cli_env([ROOT, ROOT / "plugins"]), second_shard_started, timeout=400, group=True,
                                   what="the second shard's first part is done")
        assert step_dir is not None
        _wait_until_gone([int(p.read_text()) for p in step_dir.glob("artifacts/shard-*/worker.pid")])
        assert (step_dir / "shards" / "00000.json").exists() and not (step_dir / "shards" / "00001.json").exists()
        finished = _finished_parts(step_dir)
        assert {"shard-00000/0", "shard-00000/1", "shard-00001/0"} <= set(finished)

        manifest = run_spec(download_spec(params, shard_size=40), tmp_path)
        rows = read_step_output(manifest, "download")
        counts = dict(server.counts)
    assert rows.height == table.height
    assert sorted(rows.filter(pl.col("status") == "success")["uid"]) == sorted(
        rows.filter(pl.col("gt_fault") == "none")["uid"])
    healthy = dict(rows.filter(pl.col("gt_fault") == "none").select("uid", pl.col("url").str.replace(r"^http://[^/]+", "")).iter_rows())
    done = {healthy[uid] for uids in finished.values() for uid in uids if uid in healthy}
    assert len(done) >= 30
    assert {path: counts.get(path, 0) for path in done} == dict.fromkeys(done, 1)
    assert all(counts.get(path, 0) >= 1 for path in healthy.values())


def _step_dir(store_dir: Path) -> Path | None:
    for step_dir in store_dir.iterdir() if store_dir.exists() else ():
        if (step_dir / "artifacts").is_dir():
            return step_dir
    return None


def _threads(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("Threads:"))


def test_a_killed_img2dataset_process_fails_the_step_at_once(stalling_world: World, tmp_path: Path) -> None:
    """SIGKILL img2dataset's downloading process (as the out-of-memory killer would) once a part
    is done: curate used to wait forever; now it fails within seconds, naming the signal, and a
    re-run resumes without fetching the finished part again. Three parts: once the first is done,
    the other two (each waits out a slow URL's timeout) leave seconds to find and kill the process."""
    params = {"allow_private_networks": True, "timeout": TIMEOUT, "image_size": 32, "samples_per_shard": 20,
              "threads": 8}
    with counting_server(stalling_world) as server:
        table = url_table(stalling_world, server.base_url, rows=60)
        table.write_parquet(tmp_path / "data.parquet")
        (tmp_path / "spec.yaml").write_text(yaml.safe_dump(download_spec(params), sort_keys=False))
        process = subprocess.Popen([sys.executable, "-m", "curate.cli", "run", "spec.yaml", "--quiet"], cwd=tmp_path,
                                   env=cli_env([ROOT, ROOT / "plugins"]), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            step_dir = None
            while step_dir is None or not store.stats_path(step_dir / "artifacts" / "shard-00000", 0).exists():
                step_dir = _step_dir(tmp_path / "run" / "store")
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the first part never finished"
                time.sleep(0.05)
            worker = int((step_dir / "artifacts" / "shard-00000" / "worker.pid").read_text())
            downloading: list[int] = []
            while not downloading:  # the pool process, while its download threads run
                downloading = [pid for pid in descendants(worker) if _threads(pid) > params["threads"]]
                assert time.monotonic() < deadline, "no process ever ran the download threads"
            os.kill(downloading[0], signal.SIGKILL)
            killed = time.monotonic()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                raise AssertionError("curate did not notice that img2dataset's process died") from None
            noticed = time.monotonic() - killed
            stderr = process.stderr.read().decode() if process.stderr else ""
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            if process.stderr:
                process.stderr.close()
        print(f"\nnoticed in {noticed:.1f} s: {stderr.strip()}")
        assert process.returncode == 1 and "Traceback" not in stderr  # a step failure, not bad input
        assert "killed by signal 9 (SIGKILL" in stderr and "re-running resumes" in stderr
        assert noticed < 15
        finished = _finished_parts(step_dir)
        assert "shard-00000/0" in finished

        manifest = run_spec(download_spec(params), tmp_path)
        rows = read_step_output(manifest, "download")
        counts = dict(server.counts)
    assert rows.height == table.height and rows["status"].null_count() == 0
    healthy = dict(rows.filter(pl.col("gt_fault") == "none").select("uid", pl.col("url").str.replace(r"^http://[^/]+", "")).iter_rows())
    done = {healthy[uid] for uid in finished["shard-00000/0"] if uid in healthy}
    assert done and {path: counts.get(path, 0) for path in done} == dict.fromkeys(done, 1)
    assert sorted(rows.filter(pl.col("status") == "success")["uid"]) == sorted(healthy)


def test_a_worker_whose_curate_process_died_before_it_started_exits_at_once(tmp_path: Path) -> None:
    """curate killed while the worker starts: the orphan's os.getppid() already names init, so the
    worker takes its parent's pid from the environment and exits before reading its job (it used
    to download the shard to the end, racing the re-run over img2dataset's files)."""
    from curate_download import worker

    job = tmp_path / "job.json"  # never read: the worker must exit before
    env = cli_env([ROOT, ROOT / "plugins"], **{worker.PARENT_ENV: "1"})  # "my parent is init": not so
    orphan = subprocess.run([sys.executable, worker.__file__, str(job)], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert (orphan.returncode, orphan.stderr) == (1, "")
    env[worker.PARENT_ENV] = str(os.getpid())  # the real parent: it gets as far as reading the job
    child = subprocess.run([sys.executable, worker.__file__, str(job)], env=env, capture_output=True, text=True,
                           timeout=60, check=False)
    assert child.returncode == 1 and "FileNotFoundError" in child.stderr


def test_a_link_in_an_unfinished_shards_folder_is_refused_not_written_through(clean_world: World,
                                                                              tmp_path: Path) -> None:
    """A store from someone else (a shared cache_dir, a run sent to resume) whose unfinished shard
    holds links where the step writes its pid and appends its log: the run wrote the pid over the
    file the link led to and its log onto another. Now it refuses, naming each link and the fix."""
    from curate.errors import RunDirError

    params = {"allow_private_networks": True, "timeout": TIMEOUT, "image_size": 32}
    users = {name: tmp_path / name for name in ("notes.txt", "diary.txt")}
    for path in users.values():
        path.write_text(f"the user's own {path.stem}")
    with counting_server(clean_world) as server:
        manifest, _ = run_download(tmp_path, url_table(clean_world, server.base_url, rows=10), params)
        step_dir = Path(manifest["steps"][1]["path"])
        shard = step_dir / "artifacts" / "shard-00000"
        (step_dir / "_COMPLETE.json").unlink()  # cut off before the shard finished
        (step_dir / "shards" / "00000.json").unlink()
        for stats in (shard / "img2dataset").glob("*_stats.json"):
            stats.unlink()
        for name, target in (("worker.pid", users["notes.txt"]), ("download.log", users["diary.txt"])):
            (shard / name).unlink(missing_ok=True)
            (shard / name).symlink_to(target)
        with pytest.raises(RunDirError, match=r"(?s)step 'download' cannot run in .*worker\.pid is a symbolic link to "):
            run_spec(download_spec(params), tmp_path)
    assert {path.read_text() for path in users.values()} == {"the user's own notes", "the user's own diary"}
