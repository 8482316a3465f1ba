"""An S3 endpoint on 127.0.0.1 that answers as a broken or hostile one does: one bucket per trick.

It speaks just enough S3 for s3fs: ListObjectsV2 (``GET /BUCKET?list-type=2``), HEAD and GET of
an object (``/BUCKET/KEY``, every object ``OBJECT_SIZE`` bytes, ETag ``ETAG``). Buckets::

    endless        every listing page holds PAGE_KEYS new keys and says there is more (a fresh
                   continuation token), forever
    endless-empty  every listing page is empty and says there is more, forever
    same-token     a listing page that says there is more, with the continuation token it was asked with
    stray          a listing page that also names a key outside the prefix asked for, and an entry
                   with no key
    drip           every answer (listing page, HEAD, GET) DRIP_BYTES bytes at a time, DRIP_INTERVAL s
                   apart: each read comes well within any read timeout, the whole never does

A drip stops after ``DRIP_CAP_SECONDS`` (the client without a deadline then fails its test instead
of waiting), and closing the server wakes every handler.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

PAGE_KEYS = 10
OBJECT_SIZE = 4000
ETAG = '"0123456789abcdef0123456789abcdef"'
DRIP_BYTES = 2
DRIP_INTERVAL = 0.1
DRIP_CAP_SECONDS = 30.0


class LoopbackServer(ThreadingHTTPServer):
    """A test server on 127.0.0.1 that records every request and is quiet about clients that
    drop their connection (one past its deadline does: that is the point here)."""

    daemon_threads = True
    block_on_close = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.stopping = threading.Event()
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), handler)

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        pass


class QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass


class Served:
    """A running :class:`LoopbackServer`: its endpoint and the requests it has had."""

    def __init__(self, server: LoopbackServer):
        self.server = server
        self.endpoint = f"http://127.0.0.1:{server.server_address[1]}"

    @property
    def requests(self) -> list[tuple[str, str]]:
        with self.server.lock:
            return list(self.server.requests)


@contextmanager
def serving(server: LoopbackServer, name: str) -> Iterator[LoopbackServer]:
    """``server`` answering on a thread of its own until the block ends."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()


class _Server(LoopbackServer):
    def __init__(self) -> None:
        super().__init__(_Handler)


class _Handler(QuietHandler):
    server: _Server

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        with self.server.lock:
            self.server.requests.append((self.command, self.path))
        url = urlsplit(self.path)
        bucket, _, key = url.path.lstrip("/").partition("/")
        query = {name: values[0] for name, values in parse_qs(url.query, keep_blank_values=True).items()}
        if key:
            status, headers, payload = 200, {"ETag": ETAG, "Content-Type": "application/octet-stream",
                                             "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"}, b"x" * OBJECT_SIZE
        else:
            status, headers, payload = 200, {"Content-Type": "application/xml"}, _page(bucket, query)
        headers["Content-Length"] = str(len(payload))
        head = f"HTTP/1.1 {status} OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        answer = head.encode() + (payload if body else b"")
        if bucket == "drip":
            self._drip(answer)
        else:
            self.wfile.write(answer)

    def _drip(self, answer: bytes) -> None:
        started = time.monotonic()
        for start in range(0, len(answer), DRIP_BYTES):
            if self.server.stopping.wait(DRIP_INTERVAL) or time.monotonic() - started > DRIP_CAP_SECONDS:
                self.close_connection = True
                return
            try:
                self.wfile.write(answer[start:start + DRIP_BYTES])
                self.wfile.flush()
            except OSError:  # the client gave up
                self.close_connection = True
                return


def _page(bucket: str, query: dict[str, str]) -> bytes:
    """A ListObjectsV2 page for ``bucket``'s trick."""
    token = query.get("continuation-token", "")
    prefix = query.get("prefix", "")
    page = int(token.removeprefix("page-") or 0) if token.startswith("page-") or not token else 0
    keys: list[str] = []
    truncated, next_token = False, ""
    if bucket == "endless":
        keys = [f"{prefix}part-{page:06d}-{i}.parquet" for i in range(PAGE_KEYS)]
        truncated, next_token = True, f"page-{page + 1}"
    elif bucket == "endless-empty":
        truncated, next_token = True, f"page-{page + 1}"
    elif bucket == "same-token":
        keys = [f"{prefix}part-{page:06d}.parquet"]
        truncated, next_token = True, token or "again"
    elif bucket == "drip":
        keys = [f"{prefix}a.parquet"]
    elif bucket == "stray":
        keys = [f"{prefix}a.parquet", "elsewhere/b.parquet"]
    contents = "".join(f"<Contents><Key>{escape(key)}</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified>"
                       f"<ETag>{escape(ETAG)}</ETag><Size>{OBJECT_SIZE}</Size><StorageClass>STANDARD</StorageClass>"
                       "</Contents>" for key in keys)
    if bucket == "stray":
        contents += f"<Contents><Size>{OBJECT_SIZE}</Size></Contents>"
    more = f"<NextContinuationToken>{next_token}</NextContinuationToken>" if truncated else ""
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix><KeyCount>{len(keys)}</KeyCount>"
            f"<MaxKeys>1000</MaxKeys><IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{more}"
            f"{contents}</ListBucketResult>").encode()


class HostileS3(Served):
    pass


@contextmanager
def serve_hostile_s3() -> Iterator[HostileS3]:
    with serving(_Server(), "hostile-s3") as server:
        yield HostileS3(server)
