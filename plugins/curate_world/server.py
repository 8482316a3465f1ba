"""A real HTTP image host on loopback that serves a world and acts out each URL's fault.

Routes::

    /img/NAME    the row's image, with the fault world.parquet assigns to it
    /raw/NAME    the same image, never faulty (where "redirect" points)
    /loop/NAME   redirects back to /img/NAME (the other half of "redirect_loop")
    /eval/NAME   eval images, never faulty
    /world.json  the world's manifest, so a client can check which world it is talking to

The server never outlives its context: closing it wakes every handler that is sleeping for a
"slow" fault and joins all handler threads before returning.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from curate_world import tables
from curate_world.errors import WorldError, WorldPortError
from curate_world.oversized import OversizedImages

log = logging.getLogger("curate_world.server")

MAX_SLOW_SECONDS = 120.0
NOAI_HEADER = "noai, noimageai"
NOT_IMAGE_BODY = (
    b"<!doctype html><html><head><title>Photo gallery</title></head>"
    b"<body><p>This image has moved. <a href='/'>Back to the gallery</a></p></body></html>"
)
CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


class _WorldHTTPServer(ThreadingHTTPServer):
    """Holds what handlers need; ``block_on_close`` (the default) makes ``server_close`` join them."""

    daemon_threads = True
    block_on_close = True
    # socketserver's default backlog of 5 drops connections when a downloader opens dozens at once,
    # and a dropped SYN looks like a timeout on a URL that has no fault.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], world_dir: Path, slow_seconds: float, verbose: bool,
                 listening: socket.socket | None = None):
        self.world_dir = world_dir
        self.routes = _load_routes(world_dir)
        self.slow_seconds = slow_seconds
        self.verbose = verbose
        self.stopping = threading.Event()
        self.oversized = OversizedImages(
            {name: file for name, (file, fault) in self.routes.items() if fault == "oversized"}
        )
        if listening is None:
            super().__init__(address, _Handler)
        else:  # a socket reserved earlier (see reserve_port): serve on it, bind nothing
            super().__init__(address, _Handler, bind_and_activate=False)
            self.socket.close()
            self.socket = listening
            self.server_address = listening.getsockname()

    def process_request_thread(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        # A recognisable name, so tests (and py-spy) can tell this server's threads from others.
        threading.current_thread().name = f"world-server-{self.server_address[1]}-request"
        super().process_request_thread(request, client_address)

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        # A client that gives up (download timeout) resets the connection; that is expected here.
        import sys

        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)) or self.stopping.is_set():
            return
        log.warning("error while serving %s", client_address, exc_info=error)


MAX_IMAGE_BYTES = 64 * 2**20  # a world's images are kilobytes; a bigger file is none of curate's


def _load_routes(world_dir: Path) -> dict[str, tuple[Path, str]]:
    """Image name -> (file, fault) from world.parquet."""
    import polars as pl

    table_path = world_dir / tables.WORLD_FILE
    if not table_path.exists():
        raise WorldError(
            f"{world_dir} is not a world directory (no {tables.WORLD_FILE})",
            "generate one: curate world generate DIR",
        )
    table = pl.read_parquet(table_path, columns=["url_path", "image_path", "fault"]).to_dict(as_series=False)
    # Each image inside the world directory: a world.parquet from someone else (a world directory
    # shipped with a spec) named /home/you/.ssh/id_rsa as an image, and the server served it.
    root = os.path.realpath(world_dir)
    routes = {}
    for row, (url_path, image_path, fault) in enumerate(
            zip(table["url_path"], table["image_path"], table["fault"], strict=True), start=1):
        file = world_dir / image_path
        real = os.path.realpath(file)
        if not real.startswith(root + os.sep):
            raise WorldError(f"{table_path}, row {row}: image {image_path!r} lies outside the world directory "
                             f"({real})", "generate the world again (curate world generate DIR), or delete the "
                             "directory: a world that names files elsewhere was not made by curate")
        routes[url_path.removeprefix(tables.IMAGE_URL_PREFIX)] = (file, fault)
    return routes


class _Handler(BaseHTTPRequestHandler):
    server: _WorldHTTPServer
    server_version = "curate-world/1"
    protocol_version = "HTTP/1.0"  # one request per connection: no idle keep-alive threads to wait for
    timeout = 10  # a client that connects and never sends a request cannot pin a thread forever

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:
            log.info("%s %s", self.address_string(), format % args)

    # -- routing ------------------------------------------------------------------------------
    def _respond(self, send_body: bool) -> None:
        path = urlsplit(self.path).path
        if path.startswith(tables.IMAGE_URL_PREFIX):
            self._faulty_image(path.removeprefix(tables.IMAGE_URL_PREFIX), send_body)
        elif path.startswith("/raw/"):
            route = self.server.routes.get(path.removeprefix("/raw/"))
            if route is None:
                self._status(404, send_body)
            else:
                self._file(route[0], send_body)
        elif path.startswith("/loop/") and path.removeprefix("/loop/") in self.server.routes:
            self._redirect(tables.IMAGE_URL_PREFIX + path.removeprefix("/loop/"))
        elif path.startswith(tables.EVAL_URL_PREFIX):
            name = path.removeprefix(tables.EVAL_URL_PREFIX)
            file = self.server.world_dir / tables.EVAL_IMAGE_DIR / name
            if "/" in name or not file.is_file():
                self._status(404, send_body)
            else:
                self._file(file, send_body)
        elif path == "/world.json":
            self._send(
                200, "application/json", (self.server.world_dir / "world.json").read_bytes(), send_body
            )
        elif path == "/":
            self._send(200, "text/plain; charset=utf-8", b"curate world server: GET /img/<name>\n", send_body)
        else:
            self._status(404, send_body)

    def _faulty_image(self, name: str, send_body: bool) -> None:
        route = self.server.routes.get(name)
        if route is None:
            self._status(404, send_body)
            return
        file, fault = route
        if fault == "404":
            self._status(404, send_body)
        elif fault == "500":
            self._status(500, send_body)
        elif fault == "slow":
            if self.server.stopping.wait(self.server.slow_seconds):
                self.close_connection = True  # the server is closing: hang up without answering
                return
            self._file(file, send_body)
        elif fault == "truncated":
            data = file.read_bytes()
            self._send(200, _content_type(file), data[: max(16, len(data) // 2)], send_body)
        elif fault == "not_image":
            self._send(200, "text/html; charset=utf-8", NOT_IMAGE_BODY, send_body)
        elif fault == "oversized":
            self._send(200, "image/jpeg", self.server.oversized.get(name), send_body)
        elif fault == "redirect":
            self._redirect("/raw/" + name)
        elif fault == "redirect_loop":
            self._redirect("/loop/" + name)
        elif fault == "noai":
            self._file(file, send_body, extra_headers={"X-Robots-Tag": NOAI_HEADER})
        else:
            self._file(file, send_body)

    # -- responses ----------------------------------------------------------------------------
    def _file(self, file: Path, send_body: bool, extra_headers: dict[str, str] | None = None) -> None:
        if not file.is_file() or file.stat().st_size > MAX_IMAGE_BYTES:  # a FIFO or device is read forever
            self._status(404, send_body)
            return
        self._send(200, _content_type(file), file.read_bytes(), send_body, extra_headers)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _status(self, code: int, send_body: bool) -> None:
        body = f"{code} {self.responses.get(code, ('',))[0]}\n".encode()
        self._send(code, "text/plain; charset=utf-8", body, send_body)

    def _send(
        self,
        code: int,
        content_type: str,
        body: bytes,
        send_body: bool,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra_headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)


def _content_type(file: Path) -> str:
    return CONTENT_TYPES.get(file.suffix.lower(), "application/octet-stream")


class WorldServer:
    """A running world server. Use :func:`serve_world`; ``close()`` is idempotent."""

    def __init__(
        self,
        world_dir: str | Path,
        host: str = "127.0.0.1",
        port: int = 0,
        slow_seconds: float = 3.0,
        verbose: bool = False,
        listening: socket.socket | None = None,
    ):
        if not 0.0 <= slow_seconds <= MAX_SLOW_SECONDS:
            raise WorldError(f"slow_seconds must be between 0 and {MAX_SLOW_SECONDS:g}, got {slow_seconds}")
        try:
            self._server = _WorldHTTPServer((host, port), Path(world_dir), slow_seconds, verbose, listening)
        except OSError as exc:
            raise WorldPortError(
                f"cannot serve the world on {host}:{port}: {exc.strerror or exc}",
                "pick another port, or port 0 for a free one",
            ) from None
        self.host = host
        self.port = int(self._server.server_address[1])
        self.base_url = f"http://{host}:{self.port}"
        self._threads = [
            threading.Thread(
                target=self._server.serve_forever, name=f"world-server-{self.port}", daemon=True
            ),
            threading.Thread(
                target=self._server.oversized.warm,
                args=(self._server.stopping,),
                name=f"world-server-{self.port}-warm",
                daemon=True,
            ),
        ]
        for thread in self._threads:
            thread.start()
        self._closed = False

    @property
    def slow_seconds(self) -> float:
        return self._server.slow_seconds

    def url(self, url_path: str) -> str:
        return self.base_url + url_path

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._server.stopping.set()  # wake handlers sleeping for "slow"
        self._server.shutdown()  # stop accepting; returns once serve_forever has exited
        self._server.server_close()  # close the socket and join every handler thread
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@contextmanager
def serve_world(
    world_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 0,
    slow_seconds: float = 3.0,
    verbose: bool = False,
    listening: socket.socket | None = None,
) -> Iterator[WorldServer]:
    """Serve ``world_dir`` for the duration of the ``with`` block; port 0 picks a free port.

    ``slow_seconds`` is how long "slow" URLs stall before answering: make it longer than the
    download timeout under test. ``verbose`` logs each request to the ``curate_world.server`` logger.
    ``listening``: a socket from :func:`reserve_port` to serve on instead of binding ``port``.
    """
    server = WorldServer(world_dir, host, port, slow_seconds, verbose, listening)
    try:
        yield server
    finally:
        server.close()


def reserve_port(host: str, preferred: int) -> socket.socket:
    """A listening socket on ``preferred``, or on a free port when another process holds it (a
    second user, a parallel run of the same world), for :func:`serve_world` to serve on later.
    Held from plan time to the end of the run, so the port in the rows' URLs is the one served
    (listening, because only a listening socket keeps another process's bind off the port);
    connections wait in its backlog until the server starts."""
    for port in (preferred, 0):
        listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as http.server does
        try:
            listening.bind((host, port))
            listening.listen(_WorldHTTPServer.request_queue_size)
            return listening
        except OSError as exc:
            listening.close()
            if port == 0:
                raise WorldPortError(f"cannot serve the world on {host}: {exc.strerror or exc}",
                                 "set source.params.host to a loopback address of this machine") from None
    raise AssertionError("unreachable")


def run_server(
    world_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 0,
    slow_seconds: float = 3.0,
    verbose: bool = False,
    on_ready: Callable[[WorldServer], None] | None = None,
) -> None:
    """Serve until Ctrl-C or SIGTERM, then shut down cleanly. ``on_ready`` gets the running server."""
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        # Ctrl-C may come at any moment once the URL is out, even while on_ready is still printing.
        with serve_world(world_dir, host, port, slow_seconds, verbose) as server:
            if on_ready is not None:
                on_ready(server)
            while not stop.wait(0.5):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
