"""A proxy on 127.0.0.1 in front of an S3 endpoint (moto's server) that slows (or refuses) the
requests a rule picks, as a hostile or overloaded endpoint does, and passes every other one on as
it came.

For each request, ``rule(method, path)`` (the path with its query) says what to do with it:

    "drain"  read the request's body DRIP_BYTES at a time, DRIP_INTERVAL s apart (an upload
             accepted and read a few bytes at a time), then pass it on
    "drip"   pass it on, then send the answer back DRIP_BYTES at a time, DRIP_INTERVAL s apart
    "refuse" answer 403 AccessDenied, as S3 does to credentials without the right, and pass nothing on
    "hollow" answer 200 with no body (no upload id, no ETag: not an S3 answer), and pass nothing on
    None     pass it on

Every request passed on is in ``sent`` as ``(method, path, bytes of its body)``: what a client
sent the endpoint. Each slowed request ends in ``outcomes`` as ``(method, path, how)``: "gone" (the client closed
the connection first), "capped" (it went on for ``DRIP_CAP_SECONDS``: the client waited that
long) or "done". Closing the proxy wakes every handler.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from tests.storage.hostile_s3 import (DRIP_BYTES, DRIP_CAP_SECONDS, DRIP_INTERVAL, LoopbackServer, QuietHandler, Served,
                                      serving)

Rule = Callable[[str, str], "str | None"]
# Headers of one hop, not passed on (the proxy reads each body whole, then sends it with its length).
HOP = {"connection", "keep-alive", "expect", "transfer-encoding", "content-length"}


class _Proxy(LoopbackServer):
    def __init__(self, upstream: str, rule: Rule) -> None:
        self.upstream = urlsplit(upstream)
        self.rule = rule
        self.outcomes: list[tuple[str, str, str]] = []
        self.sent: list[tuple[str, str, int]] = []
        super().__init__(_Handler)

    def server_bind(self) -> None:
        # a small receive buffer, so that a drained upload holds the client's writes, not the kernel's
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        super().server_bind()


class _Handler(QuietHandler):
    server: _Proxy

    def do_GET(self) -> None:
        self._forward()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def _forward(self) -> None:
        with self.server.lock:
            self.server.requests.append((self.command, self.path))
        how = self.server.rule(self.command, self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self._drain(length) if how == "drain" else self.rfile.read(length)
        if body is None:
            return
        if how in ("refuse", "hollow"):
            refusal = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                       b"<Message>Access Denied</Message></Error>") if how == "refuse" else b""
            status = b"403 Forbidden" if how == "refuse" else b"200 OK"
            self.wfile.write(b"HTTP/1.1 %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n%s"
                             % (status, len(refusal), refusal))
            self._ended("done")
            return
        with self.server.lock:
            self.server.sent.append((self.command, self.path, len(body)))
        upstream = http.client.HTTPConnection(self.server.upstream.hostname, self.server.upstream.port, timeout=30)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in HOP:
                    upstream.putheader(name, value)
            upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            answer = upstream.getresponse()
            payload = answer.read()
            head = [f"HTTP/1.1 {answer.status} {answer.reason}"]
            head += [f"{name}: {value}" for name, value in answer.getheaders() if name.lower() not in HOP]
            # a HEAD's answer has no body: its length is the object's, as upstream said
            length_said = answer.getheader("Content-Length", "0") if self.command == "HEAD" else len(payload)
            head.append(f"Content-Length: {length_said}")
        finally:
            upstream.close()
        whole = "\r\n".join(head).encode() + b"\r\n\r\n" + (payload if self.command != "HEAD" else b"")
        if how == "drip":
            self._drip(whole)
        else:
            self.wfile.write(whole)
        if how is not None:
            self._ended("done")

    def _ended(self, how: str) -> None:
        with self.server.lock:
            self.server.outcomes.append((self.command, self.path, how))

    def _slowly(self, step: Callable[[], bool]) -> bool:
        """Call ``step`` every DRIP_INTERVAL until it says it is done: False if the client left,
        the cap was reached or the proxy closes (the connection is then dropped)."""
        started = time.monotonic()
        while True:
            if self.server.stopping.wait(DRIP_INTERVAL):
                self.close_connection = True
                return False
            if time.monotonic() - started > DRIP_CAP_SECONDS:
                self._ended("capped")
                self.close_connection = True
                return False
            try:
                if step():
                    return True
            except OSError:
                self._ended("gone")
                self.close_connection = True
                return False

    def _drain(self, length: int) -> bytes | None:
        body = bytearray()

        def step() -> bool:
            if len(body) < length:
                got = self.rfile.read(min(DRIP_BYTES, length - len(body)))
                if not got:
                    raise ConnectionResetError("the client closed the connection")
                body.extend(got)
            return len(body) >= length

        return bytes(body) if self._slowly(step) else None

    def _drip(self, answer: bytes) -> None:
        sent = 0

        def step() -> bool:
            nonlocal sent
            self.wfile.write(answer[sent:sent + DRIP_BYTES])
            self.wfile.flush()
            sent += DRIP_BYTES
            return sent >= len(answer)

        self._slowly(step)


class SlowProxy(Served):
    server: _Proxy

    @property
    def sent(self) -> list[tuple[str, str, int]]:
        with self.server.lock:
            return list(self.server.sent)

    @property
    def outcomes(self) -> list[tuple[str, str, str]]:
        with self.server.lock:
            return list(self.server.outcomes)


@contextmanager
def serve_slow_proxy(upstream: str, rule: Rule) -> Iterator[SlowProxy]:
    with serving(_Proxy(upstream, rule), "slow-proxy") as server:
        yield SlowProxy(server)
