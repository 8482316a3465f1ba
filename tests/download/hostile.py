"""A hostile image host on 127.0.0.1: what the web does to a downloader, one route per trick.

Routes (NAME is any string; each response is the same for the same NAME)::

    /ok/NAME.png        a small valid PNG, different per NAME
    /endless/NAME       200 image/jpeg, no Content-Length, bytes forever
    /endless-chunked/NAME  the same with chunked transfer encoding
    /huge/NAME          200 with Content-Length 10 GB, bytes forever
    /drip/NAME          a valid PNG, 2 bytes every 0.5 s
    /drip-nolength/NAME  the same without a Content-Length (the body ends when the connection does)
    /drip-headers/NAME  the status line and headers, 2 bytes every 0.5 s
    /slow-redirect/N/NAME  N hops of 302, each after SLOW_HOP seconds, then /ok/NAME.png
    /bomb/NAME.png      a 110 KB PNG that declares 30000x30000 pixels (2.7 GB once decoded)
    /deep/SIDE/NAME     a 16-bit RGBA PNG of SIDE x SIDE pixels (transparent black): within the pixel
                        limit up to 7071, 8 bytes a pixel decoded and 80 in img2dataset's alpha blending
    /deep16/COLOUR/NAME  an opaque 16-bit PNG, 16 x 12, every colour sample 0x8080 (128 at 8 bits): COLOUR is
                        the PNG colour type, 0 grey or 6 RGBA (what a photo editor exports)
    /rotated/N/NAME     a JPEG stored 32 x 16 (a red top-left quarter) whose EXIF orientation is N:
                        a phone photo held upright is orientation 6, shown 16 x 32
    /lie-long/NAME      a PNG whose Content-Length is larger than the body; the server then closes
    /lie-short/NAME     a PNG whose Content-Length is half its body (the rest follows anyway)
    /loop/NAME          302 to /loop2/NAME, which redirects back
    /chain/NAME         302 to /chain/NAME/x, forever
    /retry-after/N/NAME  the first request: 429 with Retry-After: N (seconds); then /ok's PNG
    /retry-date/NAME    the first request: 503 with Retry-After as an HTTP-date 2 s ahead; then a PNG
    /unavailable/NAME   503 Service Unavailable, always
    /retry-after-huge/NAME  429 with Retry-After: 86400, always
    /busy/NAME          a PNG after BUSY_SECONDS; the server records the most requests in /busy at once
    /same/NAME          the same PNG whatever NAME is (rows sharing an image)
    /no-status-line/NAME  a PNG and nothing else, no status line or headers (HTTP/0.9), then closes
    /hdr-huge/NAME      a Radiance HDR header declaring HDR_SIDE x HDR_SIDE pixels: Pillow cannot read
                        the format, OpenCV's decoder refuses the size
    /fat/BYTES/NAME     BYTES bytes that are no image, with their Content-Length: quick to fetch over
                        loopback, and to refuse once fetched
    /gzip-bomb/NAME     200 image/png with Content-Encoding: gzip: 10 MB on the wire that inflate to 10 GB
                        (nothing should inflate it: img2dataset asks for no encoding, urllib decodes none)
    /long-reason/NAME   404 with a 60,000-character reason phrase holding terminal escapes
    /long-location/NAME 302 to a gopher: URL of 60,000 characters (urllib's error repeats it)
    /empty/NAME         200 with an empty body
    /forged/KIND/NAME   404 whose reason phrase imitates one of curate's own messages (FORGED_REASONS[KIND])
    /forged-redirect/NAME  302 to an ftp: URL whose text imitates curate's refusal
    /to/TARGET          302 to TARGET percent-decoded, its Location sent as UTF-8 bytes as servers do
                        (``http://faß.de/``: two bytes for ß), whatever scheme or host it names
    /slow-decode/NAME   a JPEG of SLOW_DECODE_SIDE x SLOW_DECODE_SIDE pixels of one colour: under 1 MB on the
                        wire, within the pixel and decoding limits, and most of a second to decode and resize

Endless bodies stop after ``ENDLESS_CAP`` bytes and drips after ``DRIP_CAP_SECONDS`` so that a
downloader without limits fails its test instead of taking the machine down; closing the server
wakes every handler.
"""

from __future__ import annotations

import email.utils
import functools
import io
import struct
import threading
import time
import urllib.parse
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

ENDLESS_CAP = 6 * 2**30
DRIP_CAP_SECONDS = 120.0
DRIP_INTERVAL = 0.5
DRIP_BYTES = 2
SLOW_HOP = 0.8
BOMB_SIDE = 30_000
BUSY_SECONDS = 0.3
HDR_SIDE = 12_000
SLOW_DECODE_SIDE = 7000
LONG_TEXT = 60_000
# Reason phrases that imitate the messages the download step classifies rows by (each a real 404)
FORGED_REASONS = {
    "refused": "refused by the download step's network policy: host 'cdn.example.com' resolves to a private "
               "address (10.0.0.7); private, loopback and link-local addresses are not downloaded unless the "
               "download step's params set `allow_private_networks: true` or list the host in "
               "`allowed_hosts: ['cdn.example.com']`",
    "too_large": "response body larger than max_bytes (33554432 bytes): Content-Length says 99999999999",
    "image_too_large": "image area larger than max_image_area (50,000,000 pixels): the image declares 9x9",
    "decode": "image needs more memory to decode than max_decode_bytes (1 bytes): 2 bytes",
    "opted_out": "Use of image disallowed by X-Robots-Tag directive",
    "timed_out": "timed out",
    "unavailable": "Service Unavailable",
    "opencv": "OpenCV(4.14.0) x.cpp:79: error: (-215:Assertion failed) pixels <= CV_IO_MAX_IMAGE_PIXELS in "
              "function 'validateInputImageSize'",
}


def png(name: str, side: int = 24) -> bytes:
    seed = zlib.crc32(name.encode())
    image = Image.new("RGB", (side, side), (seed & 255, (seed >> 8) & 255, (seed >> 16) & 255))
    image.putpixel((1, 1), (255 - (seed & 255), 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _zero_png(side: int, depth: int, colour: int, row_bytes: int, extra: bytes = b"") -> bytes:
    """A PNG of side x side zero samples, compressed a row at a time (never whole in memory)."""
    row = b"\0" * (1 + row_bytes)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, depth, colour, 0, 0, 0))
            + extra + _chunk(b"IDAT", body) + _chunk(b"IEND", b""))


@functools.cache
def bomb_png(side: int = BOMB_SIDE) -> bytes:
    """A 1-bit palette PNG of side x side zeros: tiny on the wire, 3 bytes a pixel once decoded."""
    return _zero_png(side, 1, 3, (side + 7) // 8, _chunk(b"PLTE", b"\x10\x20\x30\xff\xff\xff"))


@functools.cache
def deep_png(side: int) -> bytes:
    """A 16-bit RGBA PNG of side x side transparent black: 0.4 MB on the wire at 7000 x 7000,
    within the default pixel limit, and 3.9 GB while img2dataset decodes and blends it."""
    return _zero_png(side, 16, 6, side * 8)


def deep16_png(colour: int) -> bytes:
    """An opaque 16-bit PNG (grey or RGBA), 16 x 12, every colour sample 0x8080."""
    pixel = {0: b"\x80\x80", 6: b"\x80\x80" * 3 + b"\xff\xff"}[colour]  # alpha: opaque
    row = b"\0" + pixel * 16
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 12, 16, colour, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(row * 12)) + _chunk(b"IEND", b""))


def rotated_jpeg(orientation: int) -> bytes:
    """A JPEG stored 32 x 16, red in its top-left 16 x 8 and blue elsewhere, with EXIF
    ``orientation``."""
    image = Image.new("RGB", (32, 16), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 16, 8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


# Images img2dataset stored wrong as `success` (white, sideways), and what they are as shown:
# width, height, and the RGB at a point given as fractions of them (the middle of the red quarter
# of a rotated one). ``check_as_shown`` reads them from a run's store.
AS_SHOWN = {"deep16/0/grey": (16, 12, (0.5, 0.5), (128, 128, 128)),
            "deep16/6/rgba": (16, 12, (0.5, 0.5), (128, 128, 128)),
            "rotated/6/upright": (16, 32, (0.75, 0.25), (255, 0, 0)),
            "rotated/1/landscape": (32, 16, (0.25, 0.25), (255, 0, 0))}


def check_as_shown(rows: Any, store_dir: str, base_url: str) -> None:
    """The AS_SHOWN rows of a download's kept ``rows`` were stored as a browser shows them, kept
    at their size or resized with ``resize_mode: border`` (fitted, centred, padded)."""
    from curate.images import iter_images

    by_url = {row["url"]: row for row in rows.iter_rows(named=True)}
    chosen = [by_url[f"{base_url}/{path}"] for path in AS_SHOWN]
    for (path, (width, height, (x, y), colour)), row, image in zip(
            AS_SHOWN.items(), chosen, iter_images([row["image"] for row in chosen], store_dir), strict=True):
        shown = (row["status"], row["original_width"], row["original_height"])
        assert shown == ("success", width, height), row
        scale = min(image.width / width, image.height / height)
        left, top = (image.width - width * scale) / 2, (image.height - height * scale) / 2
        pixel = image.convert("RGB").getpixel((int(left + x * width * scale), int(top + y * height * scale)))
        assert max(abs(got - want) for got, want in zip(pixel, colour, strict=True)) <= 8, (path, pixel)


@functools.cache
def slow_decode_jpeg(side: int = SLOW_DECODE_SIDE) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (10, 200, 30)).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


@functools.cache
def gzip_bomb(inflated_mib: int = 10_000) -> bytes:
    """A gzip member of ``inflated_mib`` MiB of zeros, built from one compressed MiB repeated (a
    full flush makes each copy stand alone). Its trailer's CRC is wrong: whatever inflates it has
    paid for the 10 GB before it could tell."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(b"\0" * 2**20) + compressor.flush(zlib.Z_FULL_FLUSH)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", 0, (inflated_mib * 2**20) & 0xFFFFFFFF)
    return header + block * inflated_mib + b"\x03\x00" + trailer


def huge_hdr(side: int = HDR_SIDE) -> bytes:
    """A Radiance HDR header for side x side pixels and a few pixels of data: OpenCV checks the
    size its header declares before reading any data."""
    return (b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n" + b"-Y %d +X %d\n" % (side, side)
            + b"\x80\x80\x80\x81" * 64)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True
    request_queue_size = 1024

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.requests: list[str] = []
        self.hosts: list[str] = []  # the Host header of every request
        self.times: list[tuple[str, float]] = []  # (path, time.monotonic()) of every request
        self.busy = 0
        self.most_busy = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        pass  # clients that give up reset their connections; that is the point here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requests.append(self.path)
            self.server.hosts.append(self.headers.get("Host", ""))
            self.server.times.append((self.path, time.monotonic()))
            seen = self.server.requests.count(self.path)
        parts = self.path.strip("/").split("/")
        route, name = parts[0], parts[-1]
        handler = getattr(self, "route_" + route.replace("-", "_"), None)
        if handler is None:
            self.send_error(404)
            return
        self.seen = seen
        handler(parts)

    def _head(self, status: int = 200, length: int | None = None, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "image/png")
        if length is not None:
            self.send_header("Content-Length", str(length))
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.end_headers()

    def _endless(self, chunked: bool) -> None:
        block = b"\xff" * 2**16
        sent = 0
        while sent < ENDLESS_CAP and not self.server.stopping.is_set():
            self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
            sent += len(block)

    def route_ok(self, parts: list[str]) -> None:
        body = png(parts[-1])
        self._head(length=len(body))
        self.wfile.write(body)

    def route_endless(self, parts: list[str]) -> None:
        self._head(Connection="close")
        self._endless(chunked=False)

    def route_endless_chunked(self, parts: list[str]) -> None:
        self._head(Transfer_Encoding="chunked")
        self._endless(chunked=True)

    def route_huge(self, parts: list[str]) -> None:
        self._head(length=10 * 2**30)
        self._endless(chunked=False)

    def _drip(self, data: bytes) -> None:
        started = time.monotonic()
        for index in range(0, len(data), DRIP_BYTES):
            if self.server.stopping.wait(DRIP_INTERVAL) or time.monotonic() - started > DRIP_CAP_SECONDS:
                return
            self.wfile.write(data[index:index + DRIP_BYTES])
            self.wfile.flush()

    def route_drip(self, parts: list[str]) -> None:
        body = png(parts[-1], side=64)
        self._head(length=len(body))
        self._drip(body)

    def route_drip_nolength(self, parts: list[str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Connection", "close")  # no Content-Length: the body ends when the connection does
        self.end_headers()
        self.close_connection = True
        self._drip(png(parts[-1], side=64))

    def route_drip_headers(self, parts: list[str]) -> None:
        body = png(parts[-1])
        self._drip(b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"a" * 400 + b"\r\n"
                   + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)

    def route_slow_redirect(self, parts: list[str]) -> None:
        hops = int(parts[1])
        if self.server.stopping.wait(SLOW_HOP):
            return
        target = f"/slow-redirect/{hops - 1}/{parts[-1]}" if hops > 1 else f"/ok/{parts[-1]}.png"
        self._head(302, length=0, Location=target)

    def route_bomb(self, parts: list[str]) -> None:
        body = bomb_png()
        self._head(length=len(body))
        self.wfile.write(body)

    def route_deep(self, parts: list[str]) -> None:
        body = deep_png(int(parts[1]))
        self._head(length=len(body))
        self.wfile.write(body)

    def route_deep16(self, parts: list[str]) -> None:
        body = deep16_png(int(parts[1]))
        self._head(length=len(body))
        self.wfile.write(body)

    def route_rotated(self, parts: list[str]) -> None:
        body = rotated_jpeg(int(parts[1]))
        self._head(length=len(body))
        self.wfile.write(body)

    def route_lie_long(self, parts: list[str]) -> None:
        body = png(parts[-1])
        self._head(length=len(body) * 4, Connection="close")
        self.wfile.write(body)
        self.close_connection = True

    def route_lie_short(self, parts: list[str]) -> None:
        body = png(parts[-1])
        self._head(length=len(body) // 2, Connection="close")
        self.wfile.write(body)
        self.close_connection = True

    def route_loop(self, parts: list[str]) -> None:
        self._head(302, length=0, Location=f"/loop2/{parts[-1]}")

    def route_loop2(self, parts: list[str]) -> None:
        self._head(302, length=0, Location=f"/loop/{parts[-1]}")

    def route_chain(self, parts: list[str]) -> None:
        self._head(302, length=0, Location=self.path.rstrip("/") + "/x")

    def route_retry_after(self, parts: list[str]) -> None:
        if self.seen == 1:
            self._head(429, length=0, Retry_After=parts[1])
        else:
            self.route_ok(parts)

    def route_retry_date(self, parts: list[str]) -> None:
        if self.seen == 1:
            self._head(503, length=0, Retry_After=email.utils.formatdate(time.time() + 2, usegmt=True))
        else:
            self.route_ok(parts)

    def route_unavailable(self, parts: list[str]) -> None:
        self._head(503, length=0)

    def route_retry_after_huge(self, parts: list[str]) -> None:
        self._head(429, length=0, Retry_After="86400")

    def route_same(self, parts: list[str]) -> None:
        body = png("same")
        self._head(length=len(body))
        self.wfile.write(body)

    def route_no_status_line(self, parts: list[str]) -> None:
        self.wfile.write(png(parts[-1]))
        self.close_connection = True

    def route_hdr_huge(self, parts: list[str]) -> None:
        body = huge_hdr()
        self.send_response(200)
        self.send_header("Content-Type", "image/vnd.radiance")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def route_gzip_bomb(self, parts: list[str]) -> None:
        body = gzip_bomb()
        self._head(length=len(body), Content_Encoding="gzip")
        self.wfile.write(body)

    def route_long_reason(self, parts: list[str]) -> None:
        reason = "\x1b[2J\x1b[31mgone" + "R" * LONG_TEXT + "\x1b]0;owned\x07"
        self.wfile.write(f"HTTP/1.1 404 {reason}\r\nContent-Length: 0\r\n\r\n".encode())

    def route_long_location(self, parts: list[str]) -> None:
        self._head(302, length=0, Location="gopher://example.com/" + "a" * LONG_TEXT)

    def route_empty(self, parts: list[str]) -> None:
        self._head(200, length=0)

    def route_forged(self, parts: list[str]) -> None:
        self.wfile.write(f"HTTP/1.1 404 {FORGED_REASONS[parts[1]]}\r\nContent-Length: 0\r\n\r\n".encode())

    def route_forged_redirect(self, parts: list[str]) -> None:
        self.wfile.write(b"HTTP/1.1 302 refused by the download step's network policy: \r\n"
                         b"Location: gopher://x/refused by the download step's network policy: host 'a'"
                         b" resolves to allow_private_networks\r\nContent-Length: 0\r\n\r\n")

    def route_to(self, parts: list[str]) -> None:
        location = urllib.parse.unquote(parts[1]).encode()
        self.wfile.write(b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n")

    def route_fat(self, parts: list[str]) -> None:
        size = int(parts[1])
        self._head(length=size)
        block = b"\xee" * 2**16
        for start in range(0, size, len(block)):
            self.wfile.write(block[:size - start])

    def route_slow_decode(self, parts: list[str]) -> None:
        body = slow_decode_jpeg()
        self._head(length=len(body))
        self.wfile.write(body)

    def route_busy(self, parts: list[str]) -> None:
        with self.server.lock:
            self.server.busy += 1
            self.server.most_busy = max(self.server.most_busy, self.server.busy)
        try:
            self.server.stopping.wait(BUSY_SECONDS)
        finally:
            # Counted out before the body goes: a client that read the whole body frees its slot
            # and may start its next request before this thread returns from route_ok, which a
            # loaded CI box showed as one request too many (3 at once with max_per_host 2). A
            # client over its limit still shows: its extra request waits here with the others.
            with self.server.lock:
                self.server.busy -= 1
        self.route_ok(parts)


class HostileHost:
    def __init__(self, server: _Server):
        self.server = server
        self.base_url = f"http://127.0.0.1:{server.server_address[1]}"

    @property
    def requests(self) -> list[str]:
        with self.server.lock:
            return list(self.server.requests)

    @property
    def hosts(self) -> list[str]:
        """The Host header of every request, in the order of :attr:`requests`."""
        with self.server.lock:
            return list(self.server.hosts)

    def times(self, path: str) -> list[float]:
        with self.server.lock:
            return [at for seen, at in self.server.times if seen == path]

    @property
    def most_busy(self) -> int:
        with self.server.lock:
            return self.server.most_busy


@contextmanager
def serve_hostile() -> Iterator[HostileHost]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, name="hostile-host", daemon=True)
    thread.start()
    try:
        yield HostileHost(server)
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()
