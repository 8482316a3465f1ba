"""The plugin glue: ``format: world`` in a spec, and the ``curate world`` commands."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import curate_world
import polars as pl
import pytest
from click.testing import CliRunner
from curate_world.cli import world as world_commands
from curate_world.errors import WorldError
from curate_world.generate import generate_world
from curate_world.source import SCHEMA, WorldSource

from curate.plugins import PluginManager
from curate.source import SourceContext
from curate.testing.runner import read_step_output, run_spec

pytestmark = pytest.mark.network


@pytest.fixture
def world_pm(pm: PluginManager, register_plugin: Callable[..., Any]) -> PluginManager:
    register_plugin(curate_world, name="world", version=curate_world.__version__)
    return pm


def spec(**params: Any) -> dict[str, Any]:
    return {
        "name": "world_test",
        "source": {"format": "world", "params": {"n": 60, "seed": 5, "dir": "world", **params}},
        "steps": [{"step": "filter", "name": "reachable", "params": {"where": "gt_fault = 'none'"}}],
    }


def port_is_open(url: str) -> bool:
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    with socket.socket() as probe:
        return probe.connect_ex((host, int(port))) == 0


def test_a_spec_reads_the_world_with_ground_truth(world_pm: PluginManager, workdir: Path) -> None:
    assert "world" in world_pm.sources.names()
    manifest = run_spec(spec(), workdir, pm=world_pm)
    rows = read_step_output(manifest, "reachable")
    world = pl.read_parquet(workdir / "world" / "world.parquet")
    assert rows.height == int((world["fault"] == "none").sum())
    assert set(SCHEMA) <= set(rows.columns) and (rows["gt_fault"] == "none").all()
    joined = rows.join(world, on="world_id")
    assert (joined["alt_text"] == joined["alt_text_right"]).all()
    assert (joined["gt_description"] == joined["description"]).all()
    url = rows["url"][0]
    assert url.startswith("http://127.0.0.1:") and url.endswith(
        rows.join(world, on="world_id")["url_path"][0]
    )
    assert not port_is_open(url), "the server outlived the run"

    again = run_spec(spec(), workdir, pm=world_pm)  # same world, same port: everything is cached
    assert all(step["cached"] for step in again["steps"])
    assert read_step_output(again, "reachable")["url"].to_list() == rows["url"].to_list()


def test_urls_serve_the_images_during_the_session(tmp_path: Path) -> None:
    source = WorldSource(WorldSource.Params(n=20, seed=2, dir="w"), SourceContext(tmp_path, tmp_path, 0))
    assert source.schema() == SCHEMA and not (tmp_path / "w").exists()  # planning generates nothing
    with source.session():
        (frame,) = list(source.scan())
        table = frame.collect()
        row = table.filter(pl.col("gt_fault") == "none").row(0, named=True)
        with urllib.request.urlopen(row["url"], timeout=5) as response:
            assert response.read() == (tmp_path / "w" / "images" / f"{row['world_id']:06d}.jpg").read_bytes()
        assert dict(table.schema) == SCHEMA
    assert not port_is_open(row["url"])


def test_random_ports_change_the_fingerprint(tmp_path: Path) -> None:
    def make(**params: Any) -> WorldSource:
        return WorldSource(WorldSource.Params(n=20, dir="w", **params), SourceContext(tmp_path, tmp_path, 0))

    assert make().fingerprint() == make().fingerprint()
    assert make().fingerprint() != make(seed=1).fingerprint()
    assert make(port=0).fingerprint() != make(port=0).fingerprint()  # its URLs differ every run
    with pytest.raises(WorldError, match="port"):
        list(make(port=0).scan())


def test_a_busy_stable_port_gives_way_to_a_free_one_named_in_the_fingerprint(tmp_path: Path, caplog) -> None:
    """Another process on the world's own port (a second user, a parallel run): this run serves on
    a free port, its URLs say which, and its rows are not confused with the stable port's."""
    def make() -> WorldSource:  # a world no other test serves: this process holds no port for it
        return WorldSource(WorldSource.Params(n=20, seed=71, dir="w"), SourceContext(tmp_path, tmp_path, 0))

    stable_port = make().stable_port
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", stable_port))
        blocker.listen()
        source = make()
        with caplog.at_level(logging.WARNING, logger="curate_world"):
            busy_fingerprint = source.fingerprint()
        assert source.port != stable_port
        # its uids and every draw differ from the stable port's, and nothing cached is reused: said
        assert f"port {stable_port}, this world's stable port, is in use by another process; serving on " \
               f"{source.port} instead" in caplog.text
        assert source.describe()["base_url"] == f"http://127.0.0.1:{source.port}"
        with source.session():
            (frame,) = list(source.scan())
            row = frame.collect().filter(pl.col("gt_fault") == "none").row(0, named=True)
            assert row["url"].startswith(f"http://127.0.0.1:{source.port}/")
            with urllib.request.urlopen(row["url"], timeout=5) as response:
                assert response.status == 200
    again = make()  # the port is free again: the world's own port, and its own fingerprint
    assert again.port == stable_port and again.fingerprint() != busy_fingerprint
    assert make().fingerprint() == again.fingerprint()


def test_a_port_that_is_given_and_busy_says_how_to_fix(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        source = WorldSource(WorldSource.Params(n=20, dir="w", port=port), SourceContext(tmp_path, tmp_path, 0))
        with pytest.raises(WorldError, match="source.params.port"), source.session():
            pass


TWO_RUNS = """
import sys, urllib.request
import polars as pl
from pathlib import Path
from curate.source import SourceContext
from curate_world.source import WorldSource

work = Path(sys.argv[1])
source = WorldSource(WorldSource.Params(n=20, seed=4, dir="w"), SourceContext(work, work, 0))
print(source.port, flush=True)
sys.stdin.readline()  # both processes have planned (and hold their ports) before either serves
with source.session():
    (frame,) = list(source.scan())
    row = frame.collect().filter(pl.col("gt_fault") == "none").row(0, named=True)
    with urllib.request.urlopen(row["url"], timeout=10) as response:
        assert response.read() == (work / "w" / "images" / f"{row['world_id']:06d}.jpg").read_bytes()
    print("serving", flush=True)
    sys.stdin.readline()  # ... and both are serving at once
print("served", row["url"], flush=True)
"""


def test_two_runs_of_the_same_world_at_once_both_succeed(tmp_path: Path) -> None:
    """Two processes (two users, two parallel test workers) plan and serve the same world at the
    same time: before, the second failed with 'Address already in use' on the world's port."""
    from tests.conftest import REPO

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CURATE_")},
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")])}
    runs = []
    for index in range(2):
        (tmp_path / str(index)).mkdir()
        runs.append(subprocess.Popen([sys.executable, "-c", TWO_RUNS, str(tmp_path / str(index))], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True))
    try:
        ports = [int(run.stdout.readline()) for run in runs]  # type: ignore[union-attr]
        assert ports[0] != ports[1]
        for run in runs:
            run.stdin.write("go\n")  # type: ignore[union-attr]
            run.stdin.flush()  # type: ignore[union-attr]
        assert [run.stdout.readline().strip() for run in runs] == ["serving", "serving"]  # type: ignore[union-attr]
        outputs = [run.communicate("go\n", timeout=120) for run in runs]
    finally:
        for run in runs:
            run.kill() if run.poll() is None else None
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0, err
        assert "served http://127.0.0.1:" in out


def test_cli_generate(workdir: Path) -> None:
    runner = CliRunner()
    out = str(workdir / "out")
    result = runner.invoke(
        world_commands, ["generate", out, "--n", "30", "--seed", "3", "--noise-rates", "empty=0.5"]
    )
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(workdir / "out" / "world.parquet").height == 30
    assert '"rows": 30' in result.output
    bad = runner.invoke(world_commands, ["generate", out, "--n", "31"])
    assert isinstance(bad.exception, WorldError) and "overwrite" in str(
        bad.exception
    )  # curate's CLI prints it
    assert runner.invoke(world_commands, ["generate", out, "--noise-rates", "empty"]).exit_code == 2


def test_cli_generate_can_realign_every_row(workdir: Path) -> None:
    out = workdir / "all"
    result = CliRunner().invoke(world_commands, ["generate", str(out), "--n", "40", "--realign-fraction", "1"])
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(out / "realigned.parquet").height == 40


def test_cli_serve_prints_the_url_and_stops_on_ctrl_c(workdir: Path) -> None:
    generate_world(workdir / "w", n=10, fault_rate=0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURATE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "curate.cli", "world", "serve", "w"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        with urllib.request.urlopen(base_url + "/img/000000.jpg", timeout=5) as response:
            assert response.status == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        assert not port_is_open(base_url)
    finally:
        process.kill()
        process.communicate()


def test_a_world_stops_before_it_fills_the_disk_and_leaves_nothing(tmp_path: Path) -> None:
    """A stranger's spec may ask for 2M images of 1024 px (~100 GB): generation looks at the free
    space every CHECK_DISK_EVERY images and stops at run.min_free_disk."""
    from curate.diskspace import DiskNearlyFull

    everything = shutil.disk_usage(tmp_path).total
    source = WorldSource(WorldSource.Params(n=20, seed=2, dir="w"),
                         SourceContext(tmp_path, tmp_path, 0, min_free_disk=everything))
    with pytest.raises(DiskNearlyFull, match=r"stopped generating the world \(0 of 20 images written\)"):
        with source.session():
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_world_naming_files_outside_it_is_refused_and_never_served(tmp_path: Path) -> None:
    """A world directory shipped with a stranger's spec named /home/you/.ssh/id_rsa as an image,
    and the server served it, on 0.0.0.0 if the spec asked (security re-probe)."""
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    generate_world(tmp_path / "w", n=20, seed=0, fault_rate=0.0)
    table = pl.read_parquet(tmp_path / "w" / "world.parquet")
    table.with_columns(pl.lit(str(secret)).alias("image_path")).write_parquet(tmp_path / "w" / "world.parquet")
    source = WorldSource(WorldSource.Params(n=20, seed=0, fault_rate=0.0, dir="w"), SourceContext(tmp_path, tmp_path, 0))
    with pytest.raises(WorldError, match="row 1: image .*secret.txt' lies outside the world directory"):
        with source.session():
            pass
    untrusted = SourceContext(tmp_path, tmp_path, 0, untrusted=True)
    with pytest.raises(WorldError, match="an untrusted spec may not serve the world on '0.0.0.0'"):
        WorldSource(WorldSource.Params(n=20, dir="w", host="0.0.0.0"), untrusted).schema()
    assert WorldSource(WorldSource.Params(n=20, dir="w", host="127.0.0.1"), untrusted).schema() == SCHEMA
