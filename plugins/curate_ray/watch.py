"""Whether the Ray cluster a run uses still answers, asked while the run goes on.

Ray does not report a cluster that dies under a run (``ray stop --force``, the head's processes
killed, its machine lost) in a way the run can act on. Measured with ray 2.60, a ``curate run``
joined to a head from ``ray start --head`` whose processes were all killed while shards ran:
``ray.wait`` went on returning nothing, and 60 s later Ray's core ended the process with exit
status 1 ("Failed to connect to GCS within 60 seconds": RAY_gcs_rpc_server_reconnect_timeout_s)
before any of Python's cleanup, so the manifest stayed "running" and nothing said what was kept.
``ray.cluster_resources()`` (a call to the GCS) blocked until then, deaf to Ctrl-C, and
``ray.put`` (the node's object store) ended the process at once.

So while a session is open a thread asks, every second, the servers the driver cannot go on
without: the cluster's GCS and the raylet of the driver's own node (which holds its object store),
or for a ``ray://`` address the client server, each with curate_ray.probe's question (a TCP
connection, the HTTP/2 handshake, one gRPC call). One that has not answered for
CURATE_RAY_LOST_DEADLINE seconds is a lost cluster. The executor waits on Ray in short steps and
reads the verdict between them, asks again right before each Ray call that would block or end the
process on a dead cluster (:meth:`ClusterWatch.problem`), and once the cluster is lost it asks Ray
nothing more and raises :class:`ClusterLost`, which the engine records as the run's failure.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from curate.errors import CurateError
from curate_ray.address import target
from curate_ray.probe import answers

logger = logging.getLogger(__name__)

ASK_EVERY = 1.0  # seconds between two rounds of questions
ASK_SECONDS = 5.0  # one question's own limit: a GCS on a loaded machine may be slow, not gone


class ClusterLost(CurateError):
    """The Ray cluster stopped answering during a run; what finished is kept."""


@dataclass
class _Server:
    name: str  # "its GCS at HOST:PORT", as the error says it
    host: str
    port: int
    answered: float  # time.monotonic() of its last answer (or of the watch's start)
    problem: str | None = None  # what it did instead of answering, since then


class ClusterWatch:
    """Asks ``servers`` (``(name, host, port)`` each) on a thread of its own between :meth:`start`
    and :meth:`stop`; a server silent for ``deadline`` seconds makes the cluster lost for good."""

    def __init__(self, servers: list[tuple[str, str, int]], deadline: float):
        self.deadline = deadline
        now = time.monotonic()
        self._servers = [_Server(name, host, port, now) for name, host, port in servers]
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._lost: str | None = None
        self._thread = threading.Thread(target=self._watch, name="curate-ray-watch", daemon=True)

    def start(self) -> None:
        if self._servers:
            self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(ASK_SECONDS * len(self._servers) + 1)

    def lost(self) -> str | None:
        """What was lost (the server, how long it has been silent, what it did), or None: the
        verdict so far, without asking."""
        with self._lock:
            return self._lost

    def problem(self) -> str | None:
        """Ask every server now: None once each has answered, or what was lost where one does
        not answer until the deadline since its last answer has passed (a lost cluster stays
        lost: Ray's state of it may not have survived)."""
        silent = list(self._servers)
        while True:
            silent = [server for server in silent if not self._ask(server)]
            if (lost := self.lost()) is not None:
                return lost
            if not silent:
                return None
            time.sleep(ASK_EVERY)

    def _ask(self, server: _Server) -> bool:
        problem = answers(server.host, server.port, ASK_SECONDS)
        with self._lock:
            now = time.monotonic()
            server.problem = problem
            if problem is None:
                server.answered = now
                return True
            crossed = self._lost is None and now - server.answered >= self.deadline
        if crossed:
            verdict = f"{server.name} has not answered for {now - server.answered:.0f} s ({problem})"
            # Which of a dead cluster's servers crosses the deadline first is chance: the others
            # are asked once more, so the verdict says whether the whole cluster is gone.
            for other in self._servers:
                if other is not server and (silent := answers(other.host, other.port, ASK_SECONDS)):
                    verdict += f"; {other.name} does not answer either ({silent})"
            with self._lock:
                if self._lost is None:
                    self._lost = verdict
        return False

    def _watch(self) -> None:
        while not self._stopped.wait(ASK_EVERY) and self.lost() is None:
            for server in self._servers:
                self._ask(server)


def watch_cluster(ray: Any, address: str | None, deadline: float) -> ClusterWatch:
    """A watch of the cluster the driver is connected to (``address`` as the spec names it)."""
    if address is not None and address.startswith("ray://"):
        # Ray's client: the driver's calls go through the client server alone.
        return ClusterWatch([(f"its client server at {address}", *target(address))], deadline)
    servers = []
    try:
        context = ray.get_runtime_context()
        gcs = context.gcs_address
        if (where := target(gcs)) is not None:
            servers.append((f"its GCS at {gcs}", *where))
        node = context.get_node_id()
        for info in ray.nodes():
            if info.get("NodeID") == node and info.get("Alive"):
                host, port = info["NodeManagerAddress"], int(info["NodeManagerPort"])
                servers.append((f"the raylet of this machine's node at {host}:{port}", host, port))
    except Exception:  # a connection this cannot describe (a client connection through auto): Ray's own ways
        logger.debug("cannot find the Ray cluster's servers to watch", exc_info=True)
    return ClusterWatch(servers, deadline)
