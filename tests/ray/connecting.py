"""What the tests of joining a cluster by address share (test_connect, test_nothing_listens,
test_watch): servers on this machine that accept and then say as much as a test wants (the
``server`` fixture in conftest.py runs them), ports where nothing listens, the host Ray dials, and
a session opened at an address. No Ray cluster is started."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from curate.errors import CurateError

SETTINGS_FRAME = bytes(3) + b"\x04\x00" + bytes(4)  # an empty HTTP/2 SETTINGS frame: a server's first words

Greet = Callable[[socket.socket], socket.socket]


def silent(connection: socket.socket) -> socket.socket:
    """Accept, read nothing, send nothing."""
    return connection


def handshake_only(connection: socket.socket) -> socket.socket:
    """Begin as a gRPC server does, then never answer a call."""
    connection.sendall(SETTINGS_FRAME)
    return connection


def answers_with(connection: socket.socket, block: bytes, flags: int = 0x5) -> socket.socket:
    """Begin as an HTTP/2 server does and answer the first call with a HEADERS frame holding ``block``
    (``flags``: END_STREAM | END_HEADERS)."""
    connection.sendall(SETTINGS_FRAME)
    with connection.makefile("rb") as frames:
        assert frames.read(24).startswith(b"PRI * HTTP/2.0")
        while True:
            header = frames.read(9)
            if len(header) < 9:
                return connection
            frames.read(int.from_bytes(header[:3], "big"))
            if header[3] == 0x1 and header[5:] == b"\0\0\0\1":  # the call's HEADERS, on stream 1
                connection.sendall(len(block).to_bytes(3, "big") + bytes([0x1, flags]) + b"\0\0\0\1" + block)
                return connection


def answers_calls(connection: socket.socket) -> socket.socket:
    """Begin as a gRPC server does and answer the first call (with an empty header block: the
    probe reads frame types only)."""
    return answers_with(connection, b"")


def ray_host() -> str:
    """This machine's address as Ray sees it now: the host it dials for a loopback host, and dials
    as written (its network address, or 127.0.0.1 where Ray's loopback switch is off)."""
    from ray._private import services

    return services.get_node_ip_address()


def refused_port(host: str = "127.0.0.1") -> int:
    """A port of ``host`` nothing listens on (bound, then freed)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def open_session(address: str) -> CurateError:
    import ray
    from curate_ray.executor import RayExecutor, RayParams

    assert not ray.is_initialized()
    with pytest.raises(CurateError) as caught, RayExecutor(RayParams(address=address)).session():
        pass
    assert not ray.is_initialized()
    return caught.value


def wait_for_arguments(process: subprocess.Popen, seconds: float = 30,
                       marker: bytes = b"--gcs-address=") -> None:
    """Until /proc lists the program's arguments: Popen returns once the program is exec'd, and
    Linux lays its arguments out a moment later (until then /proc/PID/cmdline reads empty, and Ray
    finds no raylet there). A loaded machine can take a while; a CI run met that moment once."""
    cmdline = Path(f"/proc/{process.pid}/cmdline")
    deadline = time.monotonic() + seconds
    while marker not in cmdline.read_bytes():
        assert time.monotonic() < deadline, f"{cmdline} did not list the arguments in {seconds} s"
        time.sleep(0.01)
