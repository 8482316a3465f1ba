"""A cluster address that does not answer fails the run within CURATE_RAY_CONNECT_DEADLINE, saying
what was tried, instead of after ray.init's ~821 s. The addresses are servers on this machine that
accept and stay silent, or complete the HTTP/2 handshake and never answer; no Ray cluster is
started. They listen where Ray dials: Ray rewrites a loopback host to this machine's address (its
network address, unless its loopback switch is off), so most name the host Ray dials as written,
and the tests of that rewrite turn the switch on."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ray.connecting import (answers_calls, handshake_only, open_session, ray_host, refused_port, silent,
                                  wait_for_arguments)

pytest.importorskip("ray")

DEADLINE = 2  # seconds: each test waits this long, once


def test_an_address_that_accepts_and_never_answers_fails_within_the_deadline(server, monkeypatch):
    monkeypatch.setenv("CURATE_RAY_CONNECT_DEADLINE", str(DEADLINE))
    address = f"{ray_host()}:{server(silent)}"
    error = open_session(address)
    text = str(error)
    assert f"the Ray cluster at {address} did not answer in {DEADLINE} s" in text
    assert "it accepted the connection and sent nothing" in text
    assert "tried: a TCP connection" in text and "HTTP/2 handshake" in text
    assert "run.executor.params.address" in error.hint and "ray start --head" in error.hint
    assert f"CURATE_RAY_CONNECT_DEADLINE=SECONDS (now {DEADLINE})" in error.hint


@pytest.mark.parametrize(("greet", "scheme", "said"), [
    (handshake_only, "", "it completed the HTTP/2 handshake and never answered a call"),
    (silent, "ray://", "it accepted the connection and sent nothing"),
])
def test_other_addresses_that_never_answer_fail_within_the_deadline(server, monkeypatch, greet, scheme, said):
    monkeypatch.setenv("CURATE_RAY_CONNECT_DEADLINE", "1")
    address = f"{scheme}{ray_host()}:{server(greet)}"
    text = str(open_session(address))
    assert f"the Ray cluster at {address} did not answer in 1 s: {said}" in text


# -- a loopback host, which Ray dials as this machine's address -------------------------------------
@pytest.fixture
def rewritten(monkeypatch: pytest.MonkeyPatch) -> str:
    """The host Ray dials for a loopback host, with Ray's loopback switch on (as on Linux by default:
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER, read when ray is imported; a local cluster turns it off for the
    rest of the process, as curate's executor does)."""
    from ray._private import ray_constants

    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", True)
    host = ray_host()
    if ipaddress.ip_address(host).is_loopback:
        pytest.skip("this machine has no network address: Ray dials a loopback host as written")
    return host


def test_a_loopback_address_is_asked_where_ray_dials_it(server, monkeypatch, rewritten):
    """127.0.0.1:PORT in the spec: Ray dials this machine's address, where a server accepts and never
    answers; the error names both addresses."""
    monkeypatch.setenv("CURATE_RAY_CONNECT_DEADLINE", "1")
    port = server(silent, rewritten)
    error = open_session(f"127.0.0.1:{port}")
    assert f"the Ray cluster at 127.0.0.1:{port} (Ray connects to it as {rewritten}:{port}) did not answer " \
        f"in 1 s: it accepted the connection and sent nothing (tried: a TCP connection to {rewritten}:{port}" \
        in str(error)
    assert f"this machine's address, {rewritten}" in error.hint
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0" in error.hint


def test_a_cluster_answering_on_loopback_alone_fails_within_the_deadline(server, monkeypatch, rewritten):
    """It answers at 127.0.0.1:PORT, and nothing listens where Ray dials it: ray.init would wait its
    ~821 s there (its wait cut to one try here, should the probe let it through)."""
    monkeypatch.setenv("CURATE_RAY_CONNECT_DEADLINE", "1")
    monkeypatch.setenv("RAY_gcs_server_port_wait_time_s", "1")
    with socket.socket() as where_ray_dials:
        where_ray_dials.bind((rewritten, 0))  # bound and not listening: connections are refused
        port = where_ray_dials.getsockname()[1]
        server(answers_calls, "127.0.0.1", port)
        text = str(open_session(f"127.0.0.1:{port}"))
    assert f"the Ray cluster at 127.0.0.1:{port} (Ray connects to it as {rewritten}:{port}) did not answer " \
        "in 1 s: no TCP connection (last: " in text


def test_a_cluster_answering_where_ray_dials_a_loopback_address_is_left_to_ray(server, rewritten):
    from curate_ray.address import to_join
    from curate_ray.probe import check_answers

    port = server(answers_calls, rewritten)  # not on loopback
    check_answers(to_join(f"127.0.0.1:{port}"), 10)  # returns: ray.init would go on to join it


def test_a_ray_client_address_is_asked_as_written(server, monkeypatch, rewritten):
    """Ray's client connects to the address it is given: ray://127.0.0.1:PORT is loopback."""
    monkeypatch.setenv("CURATE_RAY_CONNECT_DEADLINE", "1")
    address = f"ray://127.0.0.1:{server(silent, '127.0.0.1')}"
    text = str(open_session(address))
    assert f"the Ray cluster at {address} did not answer in 1 s: it accepted the connection and sent " \
        "nothing" in text


@pytest.mark.parametrize(("switch_on", "address", "dials"), [
    (True, "127.0.0.1:6379", "{rewritten}:6379"),
    (True, "localhost:6379", "{rewritten}:6379"),
    (True, "[::1]:6379", "{rewritten}:6379"),
    (True, "ray://127.0.0.1:10001", "ray://127.0.0.1:10001"),
    (True, "10.1.2.3:6379", "10.1.2.3:6379"),
    (True, "head.example", "head.example"),  # not HOST:PORT: left to Ray's own error
    (False, "127.0.0.1:6379", "127.0.0.1:6379"),  # the switch off: loopback, as written
    (False, "localhost:6379", "127.0.0.1:6379"),
    (False, "[::1]:6379", "127.0.0.1:6379"),
])
def test_the_address_ray_dials(monkeypatch, rewritten, switch_on, address, dials):
    from curate_ray.address import to_join
    from ray._private import ray_constants

    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", switch_on)
    joining = to_join(address)
    assert (joining.address, joining.dials) == (address, dials.format(rewritten=rewritten))


def test_auto_asks_a_loopback_address_in_RAY_ADDRESS_where_ray_dials_it(monkeypatch, rewritten):
    from curate_ray.address import to_join

    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    joining = to_join("auto")
    assert (joining.address, joining.dials) == ("127.0.0.1:6379", f"{rewritten}:6379")


# -- address: auto, and the address Ray finds for it in the environment ------------------------------
@pytest.fixture
def nothing_else_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No RAY_ADDRESS, and Ray's temporary folder (RAY_TMPDIR) the test's own, so that ``auto`` finds
    only what the test puts there: its folder for the cluster file. A raylet running on this machine
    would be found first (Ray's rule), so with one running the test cannot say what auto joins."""
    from ray._private.services import find_gcs_addresses

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    find_gcs_addresses.cache_clear()  # Ray keeps what it found last: those raylets may have stopped
    if find_gcs_addresses():
        pytest.skip("a Ray cluster runs on this machine: address auto would find its raylet first")
    (tmp_path / "ray").mkdir()
    return tmp_path / "ray"


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_auto_asks_the_address_in_RAY_ADDRESS_within_the_deadline(server, monkeypatch, scheme):
    monkeypatch.setenv("CURATE_RAY_CONNECT_DEADLINE", "1")
    address = f"{scheme}{ray_host()}:{server(silent)}"
    monkeypatch.setenv("RAY_ADDRESS", address)
    error = open_session("auto")
    found = "address: auto found it in the RAY_ADDRESS environment variable"
    assert f"the Ray cluster at {address} ({found}) did not answer in 1 s: it accepted the connection and " \
        "sent nothing (tried: a TCP connection" in str(error)
    assert "unset RAY_ADDRESS" in error.hint and "ray start --head" in error.hint
    assert "leave run.executor.params.address out (or set it to local)" in error.hint


def test_auto_asks_the_address_in_the_cluster_file_within_the_deadline(server, monkeypatch,
                                                                       nothing_else_found):
    monkeypatch.setenv("CURATE_RAY_CONNECT_DEADLINE", "1")
    address = f"{ray_host()}:{server(silent)}"
    cluster_file = nothing_else_found / "ray_current_cluster"
    cluster_file.write_text(address)  # as 'ray start' leaves it
    error = open_session("auto")
    found = f"address: auto found it in the cluster file {cluster_file}"
    assert f"the Ray cluster at {address} ({found}) did not answer in 1 s: it accepted the connection and " \
        "sent nothing" in str(error)
    assert "'ray stop'" in error.hint and "RAY_ADDRESS" in error.hint


def test_auto_asks_the_gcs_of_the_raylet_running_on_this_machine_within_the_deadline(
        server, monkeypatch, nothing_else_found, tmp_path):
    monkeypatch.setenv("CURATE_RAY_CONNECT_DEADLINE", "1")
    address = f"{ray_host()}:{server(silent)}"
    # Ray knows a raylet by its program's name and reads its GCS address off its command line: a
    # stuck cluster's raylet, as far as auto can tell.
    raylet = tmp_path / "raylet"
    raylet.symlink_to(sys.executable)
    process = subprocess.Popen([str(raylet), "-c", "import time; time.sleep(60)", f"--gcs-address={address}"])
    try:
        wait_for_arguments(process)
        error = open_session("auto")
    finally:
        process.kill()
        process.wait(timeout=30)
    found = "address: auto found it in the command line of a raylet running on this machine (its --gcs-address)"
    assert f"the Ray cluster at {address} ({found}) did not answer in 1 s" in str(error)
    assert "'ray stop'" in error.hint


@pytest.mark.parametrize(("variable", "joins"), [
    ("local", "local"),  # ray.init starts a cluster: nothing to ask
    ("10.1.2.3:6379", "10.1.2.3:6379"),
])
def test_what_auto_joins(monkeypatch, nothing_else_found, variable, joins):
    from curate_ray.address import to_join

    monkeypatch.setenv("RAY_ADDRESS", variable)
    assert to_join("auto").address == joins


@pytest.mark.parametrize("variable", ["", "auto"])  # as if unset: Ray looks on this machine
def test_auto_finding_nothing_is_rays_own_connection_error(monkeypatch, nothing_else_found, variable):
    from curate_ray.address import to_join

    monkeypatch.setenv("RAY_ADDRESS", variable)
    with pytest.raises(ConnectionError, match="Could not find any running Ray instance"):
        to_join("auto")


@pytest.mark.parametrize(("variable", "problem"), [
    ("127.0.0.1:99999", "has port 99999, which is not from 1 to 65535"),
    ("127.0.0.1:6399 ", "has spaces around it (remove them)"),
    ("anyscale://cluster", "is not an address curate can check before Ray waits on it"),
])
def test_auto_refuses_an_address_in_RAY_ADDRESS_it_cannot_check(monkeypatch, nothing_else_found, variable,
                                                                 problem):
    """ray.init would wait ~821 s on it, past CURATE_RAY_CONNECT_DEADLINE: refused before it is joined."""
    monkeypatch.setenv("RAY_ADDRESS", variable)
    error = open_session("auto")
    assert f"the Ray cluster address {variable!r} (address: auto found it in the RAY_ADDRESS environment " \
        f"variable) {problem}; curate joins only an address it can check first: auto, local, " \
        "HOST:PORT" in str(error)
    assert "unset RAY_ADDRESS" in error.hint


def test_auto_refuses_an_address_in_the_cluster_file_it_cannot_check(nothing_else_found):
    cluster_file = nothing_else_found / "ray_current_cluster"
    cluster_file.write_text("127.0.0.1:0")
    error = open_session("auto")
    found = f"address: auto found it in the cluster file {cluster_file}"
    text = str(error)
    assert f"the Ray cluster address '127.0.0.1:0' ({found}) has port 0, which is not from 1 to 65535" in text


def test_auto_finding_nothing_is_rays_own_error_at_once(nothing_else_found):
    text = str(open_session("auto"))
    assert "could not start or reach the Ray cluster at auto: Could not find any running Ray instance" in text


@pytest.mark.slow
@pytest.mark.parametrize("params", [{}, {"address": "local"}], ids=["no-address", "local"])
def test_a_local_cluster_reads_no_address_from_the_environment(monkeypatch, params):
    """Without an address (or with 'local') curate starts a cluster of the run's own, bound to
    loopback (ray.init(address='local')), and RAY_ADDRESS, even one that never answers, is neither
    asked nor joined; once it names a cluster that answers, auto is left to join it."""
    import ray
    from curate_ray.address import LOOPBACK_SWITCH, to_join
    from curate_ray.executor import LOCAL_OBJECT_STORE_BYTES, RayExecutor, RayParams
    from curate_ray.probe import check_answers

    monkeypatch.setenv("CURATE_RAY_CONNECT_DEADLINE", "1")
    for variable in (LOOPBACK_SWITCH, "RAY_USAGE_STATS_ENABLED"):  # the session sets them (restored after)
        monkeypatch.delenv(variable, raising=False)
    with socket.create_server(("127.0.0.1", 0)) as listener:  # accepts (the kernel does) and never answers
        silent_address = f"127.0.0.1:{listener.getsockname()[1]}"
        monkeypatch.setenv("RAY_ADDRESS", silent_address)
        with RayExecutor(RayParams(num_cpus=1, **params)).session():
            gcs_address = ray.get_runtime_context().gcs_address
            assert gcs_address != silent_address
            assert gcs_address.startswith("127.0.0.1:"), f"the run's own cluster listens on {gcs_address}"
            resources = ray.cluster_resources()
            assert resources["CPU"] == 1
            assert resources["object_store_memory"] == pytest.approx(LOCAL_OBJECT_STORE_BYTES, rel=0.01)
            assert os.environ[LOOPBACK_SWITCH] == "0" and os.environ["RAY_USAGE_STATS_ENABLED"] == "0"
            monkeypatch.setenv("RAY_ADDRESS", gcs_address)
            check_answers(to_join("auto"), 30)  # returns: ray.init would go on to join it
    assert not ray.is_initialized()


@pytest.fixture
def ray_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """RAY_USE_TLS with a self-signed certificate (Ray's clients show it to its servers), and the
    context of a server that wants it."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command for a test certificate")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out",
                    "cert.pem", "-days", "1", "-subj", "/CN=localhost"], cwd=tmp_path, check=True, capture_output=True)
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    for name, value in [("RAY_USE_TLS", "1"), ("RAY_TLS_SERVER_CERT", cert), ("RAY_TLS_SERVER_KEY", key),
                        ("RAY_TLS_CA_CERT", cert)]:
        monkeypatch.setenv(name, value)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS, as Ray's servers
    context.load_verify_locations(cert)
    return context


def test_under_tls_a_server_that_never_finishes_the_handshake_fails_within_the_deadline(server, ray_tls, monkeypatch):
    monkeypatch.setenv("CURATE_RAY_CONNECT_DEADLINE", "1")
    address = f"{ray_host()}:{server(silent)}"
    text = str(open_session(address))
    assert f"the Ray cluster at {address} did not answer in 1 s: it accepted the connection and never " \
        "finished the TLS handshake (tried: a TCP connection to " in text and "handshake inside TLS" in text


def test_a_server_that_answers_is_left_to_ray(server):
    from curate_ray.address import to_join
    from curate_ray.probe import check_answers

    address = f"{ray_host()}:{server(answers_calls)}"
    check_answers(to_join(address), 10)  # returns: ray.init would go on to join it


def test_under_tls_a_server_that_answers_is_left_to_ray(server, ray_tls):
    from curate_ray.address import to_join
    from curate_ray.probe import check_answers

    port = server(lambda connection: answers_calls(ray_tls.wrap_socket(connection, server_side=True)))
    check_answers(to_join(f"{ray_host()}:{port}"), 10)  # returns: ray.init would go on to join it


def test_an_address_nothing_listens_on_fails_within_the_deadline(monkeypatch):
    monkeypatch.setenv("CURATE_RAY_CONNECT_DEADLINE", "1")
    address = f"{ray_host()}:{refused_port(ray_host())}"
    text = str(open_session(address))
    assert f"the Ray cluster at {address} did not answer in 1 s: no TCP connection (last: " in text
    assert "refused" in text


@pytest.mark.parametrize("value", ["0", "-5", "soon", "nan", "1e9"])
def test_a_deadline_that_is_not_a_number_of_seconds_is_an_error_naming_it(monkeypatch, value):
    monkeypatch.setenv("CURATE_RAY_CONNECT_DEADLINE", value)
    error = open_session(f"127.0.0.1:{refused_port()}")
    assert f"CURATE_RAY_CONNECT_DEADLINE={value!r} is not a number of seconds" in str(error)


@pytest.mark.parametrize(("address", "expected"), [
    ("10.1.2.3:6379", ("10.1.2.3", 6379)),
    ("head.example:6379", ("head.example", 6379)),
    ("[fd00::7]:6379", ("fd00::7", 6379)),
    ("ray://head.example:10001", ("head.example", 10001)),
    (None, None), ("auto", None), ("local", None),  # this machine's own: as Ray always did
    ("anyscale://cluster", None), ("head.example", None), ("head:99999", None),  # refused: form_problem
])
def test_which_addresses_are_asked_first(address, expected):
    from curate_ray.address import target

    assert target(address) == expected
