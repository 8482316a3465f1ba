"""An address where nothing listens (a mistyped port, a cluster that stopped) fails the run in a
few seconds, saying so, instead of after all of CURATE_RAY_CONNECT_DEADLINE (60 s) of refused
connections; a head that is starting on this machine for that port is still waited for, and so is
any address where the user set the deadline. A server that is not Ray's (an HTTP/2 proxy answering
404) fails at once, where ray.init would retry it for ~20 s. No Ray cluster is started: a head
that is starting is a process whose command line is ``ray start --head --port=PORT``'s."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from curate.errors import CurateError
from tests.ray.connecting import (answers_calls, answers_with, open_session, ray_host, refused_port,
                                  wait_for_arguments)

pytest.importorskip("ray")


@pytest.fixture(autouse=True)
def default_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deadline as a user who never set it has it: set, it is waited for whole."""
    monkeypatch.delenv("CURATE_RAY_CONNECT_DEADLINE", raising=False)


def fake_process(tmp_path: Path, name: str, *arguments: str, seconds: float = 60) -> subprocess.Popen:
    """A process that looks, by its command line, like Ray's program ``name`` run with ``arguments``
    (Python under that name, sleeping), once /proc lists its arguments."""
    program = tmp_path / name
    program.symlink_to(sys.executable)
    process = subprocess.Popen([str(program), "-c", f"import time; time.sleep({seconds})", *arguments])
    wait_for_arguments(process, marker=arguments[-1].encode())
    return process


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        process.kill()
        process.wait(timeout=30)


def test_a_port_nothing_listens_on_fails_in_seconds_naming_the_cluster_running_here(tmp_path, processes):
    """A mistyped port: nothing listens there and no head is starting for it; the cluster that runs on
    this machine (its raylet's --gcs-address, as Ray finds it for auto) is named in the hint."""
    address = f"{ray_host()}:{refused_port(ray_host())}"
    running = f"127.0.0.1:{refused_port()}"
    processes.append(fake_process(tmp_path, "raylet", f"--gcs-address={running}"))
    error = open_session(address)
    port = address.rsplit(":", 1)[1]
    assert f"the Ray cluster at {address} did not answer: a TCP connection to {address}, tried every 0.5 s " \
        "for 2 s, failed (" in str(error)
    assert f"nothing listens there, and no Ray head is starting on this machine for port {port} (no " \
        "'ray start --head' or Ray GCS process for it)" in str(error)
    assert "'ray status' on the head prints its address (this machine's Ray cluster" in error.hint
    assert running in error.hint
    assert "set run.executor to local" in error.hint
    assert "CURATE_RAY_CONNECT_DEADLINE=SECONDS (the run then waits that long for it)" in error.hint


def test_a_ray_client_address_nothing_listens_on_fails_in_seconds():
    address = f"ray://127.0.0.1:{refused_port()}"
    text = str(open_session(address))
    assert f"the Ray cluster at {address} did not answer: a TCP connection to 127.0.0.1:" in text
    assert "no 'ray start --head' or Ray client server process for it" in text


@pytest.mark.parametrize("command", [
    ["ray", "start", "--head", "--port={port}"],
    ["ray", "start", "--head", "--port", "{port}", "--block"],
    ["gcs_server", "--log_dir=/nowhere", "--gcs_server_port={port}", "--node-ip-address=127.0.0.1"],
], ids=["ray-start", "ray-start-port-apart", "gcs-server"])
def test_a_head_starting_on_this_machine_for_the_port_is_waited_for(server, tmp_path, processes, monkeypatch,
                                                                   command):
    """Refused for longer than the short wait, while a head is starting for that port: its GCS listens
    later and the address is left to ray.init."""
    from curate_ray import probe
    from curate_ray.address import to_join

    monkeypatch.setattr(probe, "REFUSED_GRACE", 0.2)  # the head listens well after it
    port = refused_port(ray_host())
    name, *arguments = (part.format(port=port) for part in command)
    processes.append(fake_process(tmp_path, name, *arguments))
    listening = threading.Timer(2, server, (answers_calls, ray_host(), port))
    listening.start()
    try:
        probe.check_answers(to_join(f"{ray_host()}:{port}"), 30)  # returns: ray.init would go on to join it
    finally:
        listening.cancel()
        listening.join()


def test_a_head_starting_for_another_port_is_not_waited_for(tmp_path, processes):
    port, other = refused_port(ray_host()), refused_port()
    processes.append(fake_process(tmp_path, "ray", "start", "--head", f"--port={other}"))
    assert "nothing listens there" in str(open_session(f"{ray_host()}:{port}"))


def test_a_deadline_the_user_set_is_waited_for_whole(monkeypatch):
    monkeypatch.setenv("CURATE_RAY_CONNECT_DEADLINE", "3")
    address = f"{ray_host()}:{refused_port(ray_host())}"
    text = str(open_session(address))
    assert f"the Ray cluster at {address} did not answer in 3 s: no TCP connection (last: " in text


def status_404(connection: socket.socket) -> socket.socket:
    return answers_with(connection, b"\x8d")  # HPACK: the static table's ':status 404'


@pytest.mark.parametrize(("block", "flags", "status"), [
    (b"\x8d", 0x5, "404"),  # indexed (a proxy's answer, as one in front of this machine's network gave)
    (b"\x48\x03503", 0x5, "503"),  # a literal field with the static table's name ':status'
    (b"\x08\x03502", 0x5, "502"),  # the same, not indexed
    (b"\x20\x8e", 0x5, "500"),  # after a dynamic table size update
    (b"\x02" + b"\x8c" + b"\0\0", 0xD, "400"),  # padded
])
def test_an_http2_server_that_is_not_grpc_fails_at_once(server, block, flags, status):
    from curate_ray.address import to_join
    from curate_ray.probe import check_answers

    address = f"{ray_host()}:{server(lambda connection: answers_with(connection, block, flags))}"
    with pytest.raises(CurateError) as caught:
        check_answers(to_join(address), 30)
    assert f"the Ray cluster at {address} did not answer: an HTTP/2 server answered the call with HTTP " \
        f"status {status}, as no gRPC server (Ray's) does: something else listens there" in str(caught.value)


@pytest.mark.parametrize("block", [
    b"\x88",  # ':status 200', as Ray's GCS answers (ray 2.60), with grpc-status 12 after it
    b"\x48\x83\x10\x01\x01",  # a Huffman-coded value: not read, left to ray.init
    b"",
])
def test_a_server_answering_200_or_unreadably_is_left_to_ray(server, block):
    from curate_ray.address import to_join
    from curate_ray.probe import check_answers

    check_answers(to_join(f"{ray_host()}:{server(lambda connection: answers_with(connection, block))}"), 30)


def test_a_name_that_does_not_resolve_fails_at_once_without_claiming_a_wait():
    text = str(open_session("nosuchhost.invalid:6379"))
    assert "the Ray cluster at nosuchhost.invalid:6379 did not answer: cannot look up " \
        "'nosuchhost.invalid'" in text

