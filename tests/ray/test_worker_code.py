"""A cluster whose workers import other code than the driver: a head started (``ray start``) with a
changed copy of curate and of the basics plugin first on its PYTHONPATH, as a node whose venv
drifted. A run on it fails before any shard is written, naming the host and what differs; it had
completed with the workers' output recorded under the driver's versions.

Token authentication is off on both sides, and the head keeps to loopback (test_loopback_cluster)."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.ray.test_loopback_cluster import SWITCH, curate_run, free_loopback_port, ray_head

pytest.importorskip("ray")

pytestmark = pytest.mark.slow  # a real head (~5 s to start) and a curate run


def drifted_copy(root: Path) -> list[Path]:
    """curate with another version, and the basics plugin with the same version and one more line."""
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO / "curate", root / "curate", ignore=ignore)
    shutil.copytree(REPO / "plugins" / "curate_basics", root / "plugins" / "curate_basics", ignore=ignore)
    init = root / "curate" / "__init__.py"
    text = init.read_text()
    assert '__version__ = "0.1.0"' in text, "the test changes curate's version 0.1.0"
    init.write_text(text.replace('__version__ = "0.1.0"', '__version__ = "0.2.0"'))
    with open(root / "plugins" / "curate_basics" / "normalize.py", "a") as normalize:
        normalize.write("\n# changed on the workers only\n")
    return [root, root / "plugins"]


def test_workers_running_other_code_fail_the_run_before_any_shard_is_written(tmp_path, workdir):
    copy = drifted_copy(tmp_path / "node")
    pythonpath = os.pathsep.join(str(path) for path in [*copy, REPO, REPO / "plugins"])
    port = free_loopback_port()
    with ray_head(port, PYTHONPATH=pythonpath, RAY_AUTH_MODE="disabled", **{SWITCH: "0"}):
        done = curate_run(workdir, f"127.0.0.1:{port}", **{SWITCH: "0"})
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert f"a Ray worker on {socket.gethostname()} runs other code than this run's driver: " \
        f"curate 0.2.0, the driver's 0.1.0 (the worker's is in {copy[0] / 'curate'})" in output
    assert f"plugin 'basics': same version (0.1.0), different code (the worker's is in " \
        f"{copy[1] / 'curate_basics'})" in output
    assert "install the same curate and plugins" in output and "Traceback" not in output
    run_dir = workdir / "run"
    assert not list(run_dir.glob("store/*/shards/*")), "a worker on other code wrote a shard"
    manifest = yaml.safe_load((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "runs other code" in manifest["error"]
