"""Whether a Ray head is starting on this machine for a port whose connections are refused.

A head that is starting refuses connections until its server listens: ``ray start --head``'s GCS
listened ~1.2 s after the command began (ray 2.60, an idle machine; longer on a loaded one), and
its client server later still. A port that nobody will ever listen on (a mistyped one, a cluster
that stopped) refuses them for good. Both look the same on the wire, so curate_ray.probe waits
for a refused address only while there is something to wait for: on this machine, a process that
will listen on that port, which is, by its command line,

- ``ray start --head`` (``--port``, 6379 unless given; ``--ray-client-server-port``, 10001 unless
  given, for a ``ray://`` address), from its start until it exits, or
- the server it started: the GCS (``gcs_server --gcs_server_port=PORT``) or the client server
  (``python -m ray.util.client.server --port=PORT``), which may still be coming up.

Another machine's processes cannot be seen from here: a head starting there is waited for only
when the user asks for the wait (CURATE_RAY_CONNECT_DEADLINE).
"""

from __future__ import annotations

import os
import socket

GCS_PORT, CLIENT_PORT = 6379, 10001  # ray start --head's own defaults


def on_this_machine(sockaddrs: list[tuple]) -> bool:
    """Whether any of these addresses (``getaddrinfo``'s) is one of this machine's: binding to an
    address works only where one of its interfaces has it."""
    for sockaddr in sockaddrs:
        family = socket.AF_INET6 if len(sockaddr) == 4 else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.bind((sockaddr[0], 0, *sockaddr[2:]))
            return True
        except OSError:
            continue
    return False


def starting_head(port: int, client: bool) -> str | None:
    """A process of this machine that shows a Ray head starting to listen on ``port`` (its GCS, or
    with ``client`` its client server), as the error would name it; None where there is none."""
    from ray._private import services  # noqa: F401  (puts the psutil Ray ships on sys.path first)

    import psutil

    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            argv = process.info["cmdline"] or []
        except (psutil.Error, OSError):
            continue
        if (what := _will_listen(argv, port, client)) is not None:
            return f"{what} (process {process.info['pid']})"
    return None


def running_clusters() -> list[str]:
    """The GCS addresses of the Ray clusters whose raylet runs on this machine (Ray's own way of
    finding them for ``address: auto``), for an error about an address that is not one of them."""
    from ray._private import services

    try:
        services.find_gcs_addresses.cache_clear()  # Ray keeps what it found last: those may have stopped
        return sorted(services.find_gcs_addresses())
    except Exception:  # a process table that cannot be read: the error says less, nothing more
        return []


def _will_listen(argv: list[str], port: int, client: bool) -> str | None:
    if _is_ray_start_head(argv):
        flag, default = ("--ray-client-server-port", CLIENT_PORT) if client else ("--port", GCS_PORT)
        if _flag(argv, flag, str(default)) == str(port):
            return f"'ray start --head' for port {port}"
        return None
    if not argv:
        return None
    if client:
        if "ray.util.client.server" in argv and _flag(argv, "--port", "") == str(port):
            return f"Ray's client server for port {port}"
    elif os.path.basename(argv[0]).startswith("gcs_server"):
        if _flag(argv, "--gcs_server_port", "") == str(port):
            return f"Ray's GCS server for port {port}"
    return None


def _is_ray_start_head(argv: list[str]) -> bool:
    """``ray start --head …`` (``python …/bin/ray``, ``python -m ray.scripts.scripts``)."""
    if "start" not in argv or "--head" not in argv:
        return False
    command = argv[:argv.index("start")]
    return any(os.path.basename(arg) in ("ray", "ray.exe") or arg == "ray.scripts.scripts" for arg in command)


def _flag(argv: list[str], flag: str, default: str) -> str:
    """The value of ``--flag=VALUE`` or ``--flag VALUE`` in ``argv`` (click takes both), else ``default``."""
    for index, arg in enumerate(argv):
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1:]
        if arg == flag and index + 1 < len(argv):
            return argv[index + 1]
    return default
