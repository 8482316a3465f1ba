"""A Ray worker that runs other code than the driver (curate or a plugin of another version, or the
same version built from other code) fails before it reads or writes a shard, naming its host and
what differs. These tests compare descriptions in this process, without a cluster;
test_worker_code.py starts one whose workers import a changed copy."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest
from curate_ray.executor import ShardActor, run_shard_on_worker
from curate_ray.samecode import check_same_code, digest, driver_code

import curate
from curate.errors import CurateError

PLUGINS = (("basics", "curate_basics", "curate"), ("ray_test_steps", "tests.ray.steps", None))


def package_files(root: Path) -> list[tuple[str, Path]]:
    return [(path.relative_to(root).as_posix(), path) for path in root.rglob("*.py")]


def test_the_digest_follows_the_code_not_where_it_is_installed(tmp_path):
    for node in ("a", "b"):
        (tmp_path / node / "pkg").mkdir(parents=True)
        (tmp_path / node / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    a, b = (package_files(tmp_path / node / "pkg") for node in ("a", "b"))
    assert digest(a) == digest(b)
    (tmp_path / "b" / "pkg" / "__init__.py").write_text("VALUE = 2\n")
    assert digest(a) != digest(b)
    (tmp_path / "b" / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    (tmp_path / "b" / "pkg" / "extra.py").write_text("")
    assert digest(a) != digest(package_files(tmp_path / "b" / "pkg"))


def test_a_process_runs_the_code_it_describes():
    code = driver_code(PLUGINS)
    assert [package.label for package in code] == ["curate", "plugin 'basics'", "plugin 'ray_test_steps'"]
    assert all(package.digest for package in code)
    check_same_code(code)  # returns


def other(code, label: str, **changes):
    return tuple(dataclasses.replace(package, **changes) if package.label == label else package
                 for package in code)


def test_another_version_is_named_with_both_versions_and_the_host():
    code = driver_code(PLUGINS)
    ours = code[0].version
    with pytest.raises(CurateError) as caught:
        check_same_code(other(code, "curate", version="9.9.9"))
    text = str(caught.value)
    assert f"a Ray worker on {socket.gethostname()} runs other code than this run's driver: curate {ours}, " \
        f"the driver's 9.9.9 (the worker's is in {Path(curate.__file__).parent})" in text
    assert "install the same curate and plugins" in caught.value.hint and "every node" in caught.value.hint


def test_the_same_version_built_from_other_code_is_named_as_such():
    code = driver_code(PLUGINS)
    with pytest.raises(CurateError) as caught:
        check_same_code(other(code, "plugin 'basics'", digest="0" * 64))
    assert f"plugin 'basics': same version ({code[1].version}), different code" in str(caught.value)
    assert "curate " not in str(caught.value).split("hint:")[0]  # only what differs


def test_a_plugin_only_the_driver_has_is_not_the_workers_business():
    """A shim plugin the driver loads a step through (tests/ray/test_faults) runs nothing on workers;
    a step that needs a plugin a worker lacks fails to unpickle there."""
    code = driver_code(PLUGINS)
    driver_only = dataclasses.replace(code[1], label="plugin 'shim'", module="curate_no_such_plugin")
    check_same_code((*code, driver_only))  # returns


class Loads:
    """A model step's stand-in: remembers whether it was set up."""

    loaded = False

    def setup(self, ctx):
        self.loaded = True


def test_a_task_on_other_code_fails_before_it_touches_its_shard():
    wrong = other(driver_code(PLUGINS), "curate", digest="0" * 64)
    with pytest.raises(CurateError, match="curate: same version"):
        run_shard_on_worker(wrong, Loads(), None, None, None)  # no shard to read: the check comes first


def test_an_actor_on_other_code_loads_no_model_and_fails_its_first_shard():
    wrong = other(driver_code(PLUGINS), "curate", digest="0" * 64)
    step = Loads()
    actor = ShardActor(wrong, step, None)
    assert not step.loaded
    with pytest.raises(CurateError, match="runs other code than this run's driver"):
        actor.run(None, None)
