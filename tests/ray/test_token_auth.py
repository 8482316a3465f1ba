"""A Ray cluster with token authentication on: a ``curate run`` that joins it without the cluster's
token fails at once with an error that says so and how to send it; with ``RAY_AUTH_MODE=token``
and the token it joins and finishes.

The head is what ``ray start --head`` starts for a user whose home holds ``~/.ray/auth_token``
(Ray then turns token authentication on by itself); the home here is a folder of the test's own,
so nothing reads or writes the real ``~/.ray``. Every run has a home of its own too, holding the
token only where the case says so. Head and runs keep to loopback (Ray's loopback switch off on
both sides), and the head is stopped by ending its process group (test_loopback_cluster)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.ray.test_loopback_cluster import ROWS, SWITCH, curate_run, free_loopback_port, ray_head

pytest.importorskip("ray")

pytestmark = pytest.mark.slow  # a real head (~5 s to start) and a curate run per case

DEADLINE = "30"  # seconds a run waits for the head to answer (it answers at once)
UNSET = {"RAY_AUTH_MODE": None, "RAY_AUTH_TOKEN": None, "RAY_AUTH_TOKEN_PATH": None, "RAY_ADDRESS": None,
         "RAY_TMPDIR": None}


@dataclass(frozen=True)
class TokenHead:
    address: str  # 127.0.0.1:PORT
    ray_tmpdir: str  # RAY_TMPDIR under which address: auto finds it
    home: Path  # the home of the head's user: .ray/auth_token holds the cluster's token
    token_file: Path


@pytest.fixture(scope="module")
def token_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenHead]:
    home = tmp_path_factory.mktemp("head-home")
    token_file = home / ".ray" / "auth_token"
    token_file.parent.mkdir()
    token_file.write_text(secrets.token_hex(32))  # what 'ray get-auth-token --generate' writes
    port = free_loopback_port()
    # RAY_AUTH_MODE unset: the token file alone turns token authentication on, as for the user.
    with ray_head(port, HOME=str(home), **{SWITCH: "0"}, **UNSET) as started:
        assert "Token authentication is enabled" in started.output, started.output  # else the tests show nothing
        yield TokenHead(f"127.0.0.1:{port}", started.ray_tmpdir, home, token_file)


@pytest.fixture
def empty_home(tmp_path: Path) -> Path:
    """A home without ``.ray/auth_token``."""
    home = tmp_path / "home"
    home.mkdir()
    return home


def run_on(head: TokenHead, workdir: Path, home: Path, address: str | None = None, **env: str | None):
    return curate_run(workdir, address or head.address,
                      **{**UNSET, "HOME": str(home), SWITCH: "0", "CURATE_RAY_CONNECT_DEADLINE": DEADLINE, **env})


def failed_with(done, *phrases: str) -> str:
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    for phrase in phrases:
        assert phrase in output, output
    assert "Traceback" not in output and "internal error" not in output, output
    assert "start one with 'ray start --head'" not in output, output  # the hint for a cluster that is not there
    return output


def completed(done, workdir: Path) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = yaml.safe_load((workdir / "run" / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert [step["rows_out"] for step in manifest["steps"]] == [ROWS, ROWS]


def test_a_run_without_a_token_is_told_the_cluster_asks_for_one(token_head, workdir, empty_home):
    done = run_on(token_head, workdir, empty_home)
    failed_with(done, f"the Ray cluster at {token_head.address} asks for an authentication token",
                "and this run has none",
                "run with RAY_AUTH_MODE=token and the cluster's token", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def test_a_run_whose_token_ray_does_not_send_is_told_to_set_the_mode(token_head, workdir):
    # The user's own case: the head's home holds the token, and Ray sends it to a named address
    # only with RAY_AUTH_MODE=token.
    done = run_on(token_head, workdir, token_head.home)
    failed_with(done, f"the Ray cluster at {token_head.address} asks for an authentication token",
                f"this run sends none: it has one ({token_head.token_file})",
                "Ray sends it only under RAY_AUTH_MODE=token")


def test_a_run_with_the_wrong_token_is_told_it_is_not_the_clusters(token_head, workdir, empty_home):
    done = run_on(token_head, workdir, empty_home, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    failed_with(done, f"the Ray cluster at {token_head.address} refused the authentication token this run sent "
                "(from RAY_AUTH_TOKEN): it is not the cluster's token")


def test_token_mode_without_a_token_is_told_where_to_put_one(token_head, workdir, empty_home):
    done = run_on(token_head, workdir, empty_home, RAY_AUTH_MODE="token")
    failed_with(done, f"RAY_AUTH_MODE=token, and this run has no authentication token to send to the Ray cluster "
                f"at {token_head.address}", "RAY_AUTH_TOKEN_PATH")


def test_address_auto_without_a_token_is_told_the_cluster_asks_for_one(token_head, workdir, empty_home):
    done = run_on(token_head, workdir, empty_home, address="auto", RAY_TMPDIR=token_head.ray_tmpdir)
    failed_with(done, f"the Ray cluster at {token_head.address} (address: auto found it in ",
                "asks for an authentication token", "and this run has none")


def test_with_token_mode_and_the_token_the_run_joins_and_finishes(token_head, workdir, empty_home):
    done = run_on(token_head, workdir, empty_home,
                  RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_head.token_file))
    completed(done, workdir)


def test_address_auto_finding_the_cluster_here_sends_the_token_of_the_home_by_itself(token_head, workdir):
    # ray.init turns token authentication on for a cluster it finds on this machine where it finds
    # a token, so this run needs no RAY_AUTH_MODE: curate's question before it must do the same.
    done = run_on(token_head, workdir, token_head.home, address="auto", RAY_TMPDIR=token_head.ray_tmpdir)
    completed(done, workdir)
