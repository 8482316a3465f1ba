"""Fixtures shared by every test: a fresh plugin manager, temporary run directories, a CLI runner
that runs ``curate`` in a subprocess, and a factory for plugin distributions outside the repo.

Hypothesis runs under the ``curate`` profile: few enough examples that the whole suite stays
quick on a laptop, no deadline (the first DuckDB query in a process is slow, and so is a
loaded machine). ``HYPOTHESIS_PROFILE=thorough`` runs many more.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import curate_basics
import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, settings

from curate.plugins import PluginManager, reset_plugin_manager

# Function-scoped fixtures (the plugin manager, tmp_path) are safe to share between the examples
# of one test: the manager is only read, and every example writes into its own sub-directory.
settings.register_profile(
    "curate",
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile("thorough", parent=settings.get_profile("curate"), max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "curate"))

REPO = Path(__file__).resolve().parents[1]
RAY_TESTS = "tests/ray/"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``--dist loadfile`` (the README's command) the Ray test files go to one process, one
    after another, as if they were one file: Ray's modules must not overlap (tests/ray/conftest.py
    holds a lock for that), and spread over processes they waited on each other's lock, one
    process idle. Other files are scheduled as loadfile does, a file at a time."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class RayFilesTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return RAY_TESTS if nodeid.startswith(RAY_TESTS) else super()._split_scope(nodeid)

    return RayFilesTogether(config, log)


@pytest.fixture(autouse=True)
def _no_process_wide_plugin_manager() -> Iterator[None]:
    """No test sees plugins another test registered through the process-wide manager."""
    reset_plugin_manager()
    yield
    reset_plugin_manager()


def builtin_plugins(*names: str) -> PluginManager:
    """A fresh manager with the built-in plugins ``curate_<name>`` only, registered as their entry
    points would register them."""
    import importlib

    manager = PluginManager(load_entry_points=False)
    for name in names:
        module = importlib.import_module(f"curate_{name}")
        manager.register(module, name=name, distribution="curate", version=module.__version__)
    return manager


@pytest.fixture
def pm() -> PluginManager:
    """A fresh manager with only the built-in basics plugin (not whatever else is installed),
    registered as the entry point would, so tests do not depend on other plugins' state."""
    manager = PluginManager(load_entry_points=False)
    manager.register(curate_basics, name="basics", distribution="curate", version=curate_basics.__version__)
    return manager


@pytest.fixture
def register_plugin(pm: PluginManager) -> Iterator[Callable[..., Any]]:
    """Register a plugin object in ``pm`` for this test only; it is unregistered afterwards."""
    names: list[str] = []

    def register(plugin: Any, name: str, version: str | None = "0.1") -> Any:
        pm.register(plugin, name=name, distribution=name, version=version)
        names.append(name)
        return plugin

    yield register
    for name in names:
        if pm.pm.has_plugin(name):
            pm.unregister(name)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory for one test's spec, data and run directories."""
    path = tmp_path / "work"
    path.mkdir()
    return path


def sample_table(rows: int = 60, *, duplicates: bool = True) -> pl.DataFrame:
    """A small, varied image–alt-text table (no uid: the engine derives it)."""
    texts = ["a red circle", "Photo of the Zorblax Tower", "click here", "", "東京タワー at night",
             "a &amp; b", "IMG_2041.jpg", "two  spaces\there", None, "a blue square"]
    return pl.DataFrame({
        "url": [f"https://example.com/img/{i % 45 if duplicates else i}.jpg" for i in range(rows)],
        "alt_text": [texts[(i % 45 if duplicates else i) % len(texts)] for i in range(rows)],
        "score": [round(((i * 37) % 100) / 100, 2) for i in range(rows)],
        "lang": [["en", "ja", "fr"][i % 3] for i in range(rows)],
    })


@pytest.fixture
def write_spec(workdir: Path) -> Callable[..., Path]:
    """Write ``spec`` (a dict or YAML text) and, optionally, ``data.parquet`` into ``workdir``."""

    def write(spec: dict[str, Any] | str, *, table: pl.DataFrame | None = None, name: str = "spec.yaml",
              directory: Path | None = None) -> Path:
        where = directory or workdir
        where.mkdir(parents=True, exist_ok=True)
        if table is not None:
            table.write_parquet(where / "data.parquet")
        text = spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False)
        path = where / name
        path.write_text(text)
        return path

    return write


class CliResult:
    def __init__(self, completed: subprocess.CompletedProcess[str]):
        self.code = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"<exit {self.code}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}>"


def cli_env(pythonpath: list[Path] | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURATE_")}
    # The tree these tests belong to, last: in a git worktree whose venv has another checkout
    # installed (editable), a subprocess would otherwise run that checkout's code.
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in [*(pythonpath or []), REPO, REPO / "plugins"])
    env["COLUMNS"] = "200"  # rich wraps tables to the terminal width; keep lines whole
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


@pytest.fixture
def curate_cli(workdir: Path) -> Callable[..., CliResult]:
    """Run ``python -m curate.cli ARGS`` in a subprocess (as a user would), in ``workdir``."""

    def run(*args: str, cwd: Path | None = None, pythonpath: list[Path] | None = None,
            timeout: float = 120, **env: str) -> CliResult:
        completed = subprocess.run(
            [sys.executable, "-m", "curate.cli", *args],
            cwd=cwd or workdir, env=cli_env(pythonpath, **env), capture_output=True, text=True, timeout=timeout,
            check=False,
        )
        return CliResult(completed)

    return run


@pytest.fixture
def make_plugin_dist(tmp_path: Path) -> Callable[..., Path]:
    """Build an installed-looking plugin outside the repo: ``<module>.py`` plus
    ``<name>-<version>.dist-info/`` with METADATA and an ``entry_points.txt`` in group ``curate``.
    Returns the directory to put on PYTHONPATH."""

    def make(name: str, module_source: str, *, version: str = "0.1", entry_point: str | None = None,
             module: str | None = None) -> Path:
        root = tmp_path / f"site-{name}"
        root.mkdir()
        module = module or name.replace("-", "_")
        (root / f"{module}.py").write_text(textwrap.dedent(module_source))
        dist = root / f"{module}-{version}.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (dist / "entry_points.txt").write_text(f"[curate]\n{entry_point or name} = {module}\n")
        return root

    return make


@pytest.fixture(autouse=True)
def _grad_mode_is_left_as_found(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test (or the code under it) that switches torch's grad mode off process-wide would break
    every training test after it; catch the one that does it, not the ones it breaks."""
    torch = sys.modules.get("torch")
    before = torch.is_grad_enabled() if torch is not None else True
    yield
    torch = sys.modules.get("torch")
    if torch is not None and before and not torch.is_grad_enabled():
        torch.set_grad_enabled(True)
        pytest.fail(f"{request.node.nodeid} left torch's grad mode switched off for the tests after it")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """open_clip_train, which some tests run in-process, sets every logger that exists to INFO;
    torch.export's compile statistics, logged at interpreter exit, would then end the output."""
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch"):
            logging.getLogger(name).setLevel(logging.WARNING)


def kill_when_ready(command: list[str], cwd: Path, env: dict[str, str], ready: Callable[[], Any], *,
                    timeout: float = 90.0, group: bool = False, what: str = "the moment to kill it") -> Any:
    """Start ``command`` (a real ``curate run``), poll ``ready()`` until it returns something
    truthy, then SIGKILL the process (``group``: its whole process group, workers included) and
    return that value. Fails, naming ``what``, when the process ends or ``timeout`` seconds pass
    first; the process never outlives the call, and it must have died of the SIGKILL."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=group)
    try:
        deadline = time.monotonic() + timeout
        while not (value := ready()):
            if process.poll() is not None:
                stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise AssertionError(f"the run ended before {what}: {stderr}")
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.02)
        if process.poll() is not None:
            raise AssertionError(f"the run ended before it could be killed at {what}")
    finally:
        if process.poll() is None:
            if group:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        if process.stderr:
            process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    return value
