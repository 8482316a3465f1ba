"""Bounded fetching in img2dataset's processes: a deadline per attempt, caps on bytes, pixels and
decoding memory.

img2dataset fetches a row with ``urllib.request.urlopen(request, timeout=timeout)`` and then
``response.read()``. urllib's timeout bounds each socket operation, not the transfer: a server
that drips a byte per second holds a row for hours. ``read()`` without a length reads whatever
arrives: an endless body fills memory until the kernel steps in. And img2dataset decodes the
whole image before it compares the area with ``max_image_area``: a 100 KB PNG that declares
30000x30000 pixels costs gigabytes first.

img2dataset has no hook for its fetch function, but ``urlopen`` goes through the process-wide
opener, which urllib lets a program replace (``urllib.request.install_opener``, public API). This
module builds that opener from urllib's own handlers, with connection classes that bound what
they read; img2dataset's code is untouched. Only the standard library is imported here (and
``header.py``, which reads an image's header with Pillow, lazily): these processes pay for
img2dataset's imports already.

- **Deadline.** Each ``open()`` (one attempt at a row, its redirects included) starts a clock
  of ``timeout`` seconds; every socket operation of that attempt (connect, TLS handshake, request,
  status line and headers, every hop of a redirect, the body) waits at most for the time left,
  and fails with :data:`TIMED_OUT` once it is spent. DNS lookups are the resolver's business.
- **Bytes.** A body longer than ``max_bytes`` is refused (:data:`TOO_LARGE`): at once when its
  Content-Length says so, else as soon as ``max_bytes + 1`` bytes arrived, whatever the
  Content-Length said. A body that ends before its Content-Length is an error, not a short image.
- **Pixels.** A body whose image header declares more than ``max_image_area`` pixels is refused
  (:data:`IMAGE_TOO_LARGE`) before anything decodes it. Reading the header costs a bounded time
  (``header.py``): it runs after the body was read, outside the deadline; a header that takes
  more than ``header.HEADER_READS`` reads to find is refused (:class:`header.HeaderUnreadable`).
- **Decoding memory.** A body whose header says decoding it takes more than ``max_decode_bytes``
  (its channels and bit depth count, and img2dataset's float64 alpha blending: see ``header.py``)
  is refused (:data:`DECODE_TOO_LARGE`) before anything decodes it. img2dataset decodes in each
  process's main thread, one image at a time, while its threads only fetch: so this bounds the
  memory a process spends decoding, however many threads it has.
- **Bodies waiting to be decoded.** img2dataset's threads keep fetching while the main thread
  decodes: up to ``2 x threads`` fetched bodies wait for it, each up to ``max_bytes`` (4 GiB at
  64 threads and 32 MiB; measured, a server that answers quickly with big bodies and now and then
  with an image slow to decode gets there). With ``max_buffered_bytes`` set, a process's bodies,
  fetched or being fetched and not yet decoded, hold at most that many bytes (:class:`BodyBudget`):
  an attempt takes the budget's bytes as the body arrives, a chunk at a time, waiting in turn,
  within the attempt's deadline, while the budget is spent (see :class:`BodyBudget`); the worker gives a body's bytes back when img2dataset's resizer is
  done with it (``worker.py``). An attempt whose deadline passes while it waits fails with
  :data:`TIMED_OUT`, saying it waited for ``max_buffered_bytes``.
- **Retries.** An attempt that fails transiently (HTTP 429, 502, 503, 504; a connection refused,
  reset or closed early; a timeout while connecting or waiting for the headers) is tried again,
  up to ``retries`` times, after waiting what the response's ``Retry-After`` asks (seconds or an
  HTTP-date) or else ``backoff * 2**n`` seconds (plus up to 25 % jitter). A wait longer than
  ``max_retry_wait`` is not made: the row fails at once, saying so. Each attempt has its own
  deadline; a row takes at most ``(retries + 1) * timeout + retries * max_retry_wait`` seconds.
  img2dataset's own ``retries`` (which retries every error, 404 included, without waiting) is
  left at 0. Errors while reading the body (after ``open()`` returned) are not retried.
- **Messages.** A row's message is ``str`` of its error, and the step classifies rows by how it
  starts. An HTTP error says its status code's standard phrase, never the server's reason
  phrase (which could imitate curate's own messages); other text a server writes into one (a
  redirect's Location, up to the 64 KiB http.client allows a line) comes after the start, at
  most :data:`MESSAGE_CHARS` of it (its head and tail), control characters escaped
  (:func:`shown_error`): a row's message stays a line's worth, whatever the server sent,
  100,000 rows of them included.
- **Per-host limits.** ``max_per_host`` attempts at one host run at once in this process (a
  semaphore per host name, held from the request until the response is closed), and
  ``host_rate`` attempts per second start at one host (a schedule per host). Waiting for either
  is not part of an attempt's deadline. The host is that of the row's URL; redirect hops count
  against it.
"""

from __future__ import annotations

import email.utils
import http
import http.client
import json
import random
import re
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from .header import read_header
from .urls import fetchable_url

LIMITS_ENV = "CURATE_DOWNLOAD_LIMITS"
# Marks that the download step turns into row statuses (after urllib may have wrapped them).
TIMED_OUT = "timed out"
TOO_LARGE = "response body larger than max_bytes"
IMAGE_TOO_LARGE = "image area larger than max_image_area"
DECODE_TOO_LARGE = "image needs more memory to decode than max_decode_bytes"
DEFAULT_IMAGE_AREA = 50_000_000
# The default max_decode_bytes per pixel of max_image_area (1 GB at 50 MP): every image within
# the pixel limit decodes within it at up to 4 channels of 16 bits, and an image with an alpha
# channel, which img2dataset blends in float64 (72 bytes a pixel more), up to ~12.5 MP: a 4K
# screenshot with alpha (8.3 MP, ~630 MB) is downloaded, a 7000x7000 16-bit RGBA PNG (3.9 GB) is
# not. 8 bytes a pixel (400 MB) refused alpha images over ~5 MP, common on the web.
DECODE_BYTES_PER_PIXEL = 20
ONLY_HTTP = "only http and https are"
CHUNK_BYTES = 1 << 16
RETRY_STATUSES = frozenset({429, 502, 503, 504})
GAVE_UP = "gave up after"
MAX_REDIRECTS = urllib.request.HTTPRedirectHandler.max_redirections  # distinct URLs urllib follows
MAX_REPEATS = urllib.request.HTTPRedirectHandler.max_repeats  # visits of one URL it allows
MESSAGE_CHARS = 1000  # the most of a server's text (reason phrase, Location) a row's message keeps
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # all but tab and newline

_attempt = threading.local()  # .deadline, .seconds and .opening while an open() runs in this thread


def default_decode_bytes(max_image_area: float | None) -> int | None:
    """``max_decode_bytes`` when the step's params leave it unset: none without a pixel limit."""
    return None if max_image_area is None else int(max_image_area * DECODE_BYTES_PER_PIXEL)


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 32 * 2**20
    max_image_area: float | None = DEFAULT_IMAGE_AREA
    max_decode_bytes: int | None = default_decode_bytes(DEFAULT_IMAGE_AREA)
    retries: int = 0  # attempts after the first, for transient failures only
    backoff: float = 1.0  # seconds before the first retry when the server gives no Retry-After
    max_retry_wait: float = 30.0  # longest wait before a retry; a longer Retry-After fails the row
    max_per_host: int | None = None  # attempts at one host at once, in this process
    host_rate: float | None = None  # attempts started per second at one host, in this process
    # bodies fetched and not yet decoded, in this process; None: no budget. Only with a consumer
    # that calls body_consumed for every body read (the worker's hook on img2dataset's resizer).
    max_buffered_bytes: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> FetchLimits:
        return cls(**json.loads(text))


class DeadlineExceeded(TimeoutError):
    """The attempt's whole transfer took longer than the step's ``timeout``."""


class BodyTooLarge(OSError):
    pass


class ImageTooLarge(OSError):
    """The image's header declares more pixels, or more decoding memory, than allowed."""


class BodyIncomplete(OSError):
    pass


class BodyEmpty(OSError):
    """A response of no bytes: OpenCV's decoder said so as a raw assertion with its source path."""


def _deadline_error(seconds: float | None) -> DeadlineExceeded:
    return DeadlineExceeded(f"{TIMED_OUT}: the transfer took longer than the download step's timeout "
                            f"({seconds:g} s for connecting, redirects, headers and body together)")


class _Bounded:
    """Shared by both socket classes: before each blocking call, wait at most the time left."""

    deadline: float | None = None
    seconds: float | None = None

    def _arm(self) -> None:
        if self.deadline is None:
            return
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _deadline_error(self.seconds)
        self.settimeout(left if self.seconds is None else min(left, self.seconds))  # type: ignore[attr-defined]

    def _timed_out(self, exc: TimeoutError) -> TimeoutError:
        if self.deadline is not None and time.monotonic() >= self.deadline - 0.01:
            return _deadline_error(self.seconds)
        return exc


class DeadlineSocket(_Bounded, socket.socket):
    """A plain TCP socket whose operations end at the attempt's deadline."""

    @classmethod
    def adopt(cls, sock: socket.socket, deadline: float, seconds: float | None) -> DeadlineSocket:
        timeout = sock.gettimeout()
        bounded = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        bounded.settimeout(timeout)
        bounded.deadline, bounded.seconds = deadline, seconds
        return bounded

    def recv_into(self, buffer, nbytes=0, flags=0):  # type: ignore[no-untyped-def,override]
        self._arm()
        try:
            return super().recv_into(buffer, nbytes, flags)
        except TimeoutError as exc:
            raise self._timed_out(exc) from None

    def recv(self, bufsize, flags=0):  # type: ignore[no-untyped-def,override]
        self._arm()
        try:
            return super().recv(bufsize, flags)
        except TimeoutError as exc:
            raise self._timed_out(exc) from None

    def sendall(self, data, flags=0):  # type: ignore[no-untyped-def,override]
        self._arm()
        try:
            return super().sendall(data, flags)
        except TimeoutError as exc:
            raise self._timed_out(exc) from None


class DeadlineSSLSocket(_Bounded, ssl.SSLSocket):
    """The TLS socket class of the opener's context (``SSLContext.sslsocket_class``, public API).
    The handshake runs inside ``wrap_socket`` under the connect timeout, which is already no
    longer than the time left; reads and writes after it are bounded here."""

    def read(self, len=1024, buffer=None):  # type: ignore[no-untyped-def,override]  # noqa: A002
        self._arm()
        try:
            return super().read(len, buffer)
        except TimeoutError as exc:
            raise self._timed_out(exc) from None

    def write(self, data):  # type: ignore[no-untyped-def,override]
        self._arm()
        try:
            return super().write(data)
        except TimeoutError as exc:
            raise self._timed_out(exc) from None

    def sendall(self, data, flags=0):  # type: ignore[no-untyped-def,override]
        self._arm()
        try:
            return super().sendall(data, flags)
        except TimeoutError as exc:
            raise self._timed_out(exc) from None


_process_limits: list[FetchLimits] = [FetchLimits()]  # what install_opener set for this process


@dataclass(eq=False)  # compared by identity: the queue holds readers, and two may hold the same
class Reading:
    """One body being read: the bytes of the budget it holds, and whether it is the finisher."""

    have: int = 0
    finisher: bool = False


class BodyBudget:
    """Bytes of response bodies this process holds: taken by the threads that fetch them as the
    bytes arrive, given back by the thread that decodes them.

    A body takes what it has read, not what it may read: a reservation of ``max_bytes`` made
    before reading let 16 responses dripping a byte a second, without a Content-Length, hold the
    whole 512 MiB default, and good rows from every other host timed out waiting (web probe:
    14 of 80). Readers grow freely while the budget keeps ``max_bytes`` spare. Past that, one
    reader at a time, first come first served, becomes the finisher, which may use the spare: it
    can always read a whole body once the decoder frees what is waiting, so readers never all
    hold part of what they need while nothing is left for any of them to finish."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._held = 0
        self._reading = 0  # of ``_held``, what bodies being read hold (the rest waits for the decoder)
        self._finisher: Reading | None = None
        self._queue: list[Reading] = []  # readers waiting to become the finisher, oldest first

    @property
    def held(self) -> int:
        with self._condition:
            return self._held

    def shares(self) -> tuple[int, int]:
        """(bytes held by bodies being read, by bodies waiting for the decoder)."""
        with self._condition:
            return self._reading, self._held - self._reading

    def grow(self, reading: Reading, amount: int, capacity: int, spare: int, deadline: float | None) -> bool:
        """Wait until ``reading`` may hold ``amount`` more bytes within ``capacity``, keeping
        ``spare`` (max_bytes) for the finisher unless it is the finisher; False if ``deadline``
        (``time.monotonic()``) passes first."""
        with self._condition:
            if not reading.finisher and self._held + amount <= capacity - spare:
                return self._take(reading, amount)
            if not reading.finisher:
                self._queue.append(reading)
            try:
                while True:
                    if not reading.finisher and self._finisher is None and self._queue[0] is reading:
                        reading.finisher, self._finisher = True, reading
                        self._queue.remove(reading)
                    if reading.finisher and self._held + amount <= capacity:
                        return self._take(reading, amount)
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._condition.wait(left)
            finally:
                if reading in self._queue:
                    self._queue.remove(reading)
                self._condition.notify_all()

    def _take(self, reading: Reading, amount: int) -> bool:
        self._held += amount
        self._reading += amount
        reading.have += amount
        return True

    def done(self, reading: Reading, keep: int) -> None:
        """``reading`` ended: ``keep`` of its bytes wait for the decoder (0 when it failed), the
        rest is given back, and it is no longer the finisher."""
        with self._condition:
            keep = min(keep, reading.have)
            self._held = max(0, self._held - (reading.have - keep))
            self._reading = max(0, self._reading - reading.have)
            reading.have = 0
            if reading.finisher:
                reading.finisher, self._finisher = False, None
            self._condition.notify_all()

    def release(self, amount: int) -> None:
        """A body of ``amount`` bytes was decoded (or dropped)."""
        if amount <= 0:
            return
        with self._condition:
            self._held = max(self._reading, self._held - amount)
            self._condition.notify_all()


_budget = BodyBudget()


def body_consumed(size: int) -> None:
    """A body of ``size`` bytes that ``read()`` returned is decoded: its bytes are free again.
    Called once per body by whatever consumes them (see :class:`BodyBudget`)."""
    _budget.release(size)


class NoStatusLine(http.client.BadStatusLine):
    """The reply did not start with an HTTP status line (an HTTP/0.9 server, or not HTTP at
    all). http.client's own error is the raw line, often binary (``'\\x89PNG\\r\\n'``), which
    img2dataset would keep as the row's message; this one says what happened."""

    def __str__(self) -> str:
        start = self.line[:40] + ("…" if len(self.line) > 40 else "")
        if self.line.startswith("HTTP/"):
            return f"the server sent an invalid HTTP status line: {start!r}"
        return f"the server sent no HTTP status line (an HTTP/0.9 or non-HTTP reply); it began with {start!r}"


class BoundedResponse(http.client.HTTPResponse):
    """``read()`` without a length reads at most ``max_bytes``, within the process's budget for
    bodies (``max_buffered_bytes``), and refuses image bombs. Closing it frees its host's slot
    (see :class:`HostGate`)."""

    curate_release = None
    curate_deadline: float | None = None  # the attempt's, for waiting on the budget
    curate_seconds: float | None = None

    def begin(self) -> None:
        self.curate_deadline = getattr(_attempt, "deadline", None)
        self.curate_seconds = getattr(_attempt, "seconds", None)
        try:
            super().begin()
        except http.client.RemoteDisconnected:  # closed before replying: transient, see is_transient
            raise
        except http.client.BadStatusLine as exc:
            raise NoStatusLine(exc.line) from None

    def close(self) -> None:
        try:
            super().close()
        finally:
            release, self.curate_release = self.curate_release, None
            if release is not None:
                release()

    def read(self, amt=None):  # type: ignore[no-untyped-def,override]
        if amt is not None:
            return super().read(amt)
        limits = _process_limits[0]
        declared = self.length
        if declared is not None and declared > limits.max_bytes:
            self.close()
            raise BodyTooLarge(f"{TOO_LARGE} ({limits.max_bytes} bytes): Content-Length says {declared}")
        # A body read inside open() is a redirect's, which urllib reads and drops: nobody decodes it
        # (nor gives it back), so it is not the budget's, only max_bytes'.
        budgeted = limits.max_buffered_bytes is not None and not self.isclosed() \
            and not getattr(_attempt, "opening", False)
        reading = Reading() if budgeted else None
        try:
            data = self._read_body(declared, limits, reading)
            if not data and not getattr(_attempt, "opening", False):
                raise BodyEmpty(f"the server sent an empty body (HTTP {self.status}, no bytes)")
            check_image(data, limits)
        except BaseException:
            if reading is not None:
                _budget.done(reading, keep=0)
            raise
        if reading is not None:
            _budget.done(reading, keep=len(data))  # given back by body_consumed once decoded
        return data

    def _grow(self, reading: Reading | None, amount: int, limits: FetchLimits) -> None:
        """Take ``amount`` more bytes of the budget before reading them."""
        if reading is None or limits.max_buffered_bytes is None:
            return
        spare = limits.max_bytes + 1  # a body is read to one byte past max_bytes, to refuse it
        if not _budget.grow(reading, amount, limits.max_buffered_bytes, spare, self.curate_deadline):
            self.close()
            being_read, waiting = _budget.shares()
            raise DeadlineExceeded(
                f"{TIMED_OUT}: waited longer than the download step's timeout ({self.curate_seconds:g} s) for "
                f"memory to read the body into: this process's bodies hold max_buffered_bytes "
                f"({limits.max_buffered_bytes:,} bytes): {waiting:,} bytes wait for the decoder and "
                f"{being_read:,} are bodies still being read")

    def _read_body(self, declared: int | None, limits: FetchLimits, reading: Reading | None) -> bytes:
        """The body, a chunk at a time, each taken from the budget before it is read."""
        body = bytearray()
        while True:
            want = CHUNK_BYTES if declared is None else min(CHUNK_BYTES, declared - len(body))
            if declared is not None and want <= 0:
                break
            want = min(want, limits.max_bytes + 1 - len(body))
            unused = reading.have - len(body) if reading is not None else 0  # a read may bring less than asked
            if want > unused:
                self._grow(reading, want - unused, limits)
            try:
                chunk = super().read(want)
            except http.client.IncompleteRead as exc:
                chunk = exc.partial
            if not chunk:
                if declared is not None:
                    raise BodyIncomplete(f"the body ended after {len(body)} of the {declared} bytes its "
                                         "Content-Length announced")
                break
            body += chunk
            if len(body) > limits.max_bytes:
                self.close()
                raise BodyTooLarge(f"{TOO_LARGE} ({limits.max_bytes} bytes): stopped reading after {len(body)} bytes")
        return bytes(body)


def check_image(data: bytes, limits: FetchLimits) -> None:
    """Refuse an image whose header declares more pixels, or more decoding memory, than allowed,
    without decoding it. Formats no header reader knows pass; OpenCV's own pixel cap
    (OPENCV_IO_MAX_IMAGE_PIXELS, which the step sets to ``max_image_area``) still stands before
    the decoder."""
    if limits.max_image_area is None and limits.max_decode_bytes is None:
        return
    header = read_header(data)
    if header is None:
        return
    area = header.pixels
    if limits.max_image_area is not None and area > limits.max_image_area:
        raise ImageTooLarge(f"{IMAGE_TOO_LARGE} ({limits.max_image_area:,.0f} pixels): the image declares "
                            f"{header.width}x{header.height} = {area:,} pixels")
    if limits.max_decode_bytes is not None and header.decode_memory > limits.max_decode_bytes:
        raise ImageTooLarge(f"{DECODE_TOO_LARGE} ({limits.max_decode_bytes:,} bytes): the image declares "
                            f"{header.describe()}, about {header.decode_memory:,} bytes to decode")


class _DeadlineConnect:
    """Connects within the time left, and hands out sockets that keep to the deadline."""

    timeout: object
    sock: socket.socket | None

    def connect(self) -> None:
        deadline, seconds = getattr(_attempt, "deadline", None), getattr(_attempt, "seconds", None)
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _deadline_error(seconds)
            self.timeout = min(left, seconds) if seconds is not None else left
        super().connect()  # type: ignore[misc]
        if deadline is None or self.sock is None:
            return
        if isinstance(self.sock, DeadlineSSLSocket):
            self.sock.deadline, self.sock.seconds = deadline, seconds
        elif type(self.sock) is socket.socket:
            self.sock = DeadlineSocket.adopt(self.sock, deadline, seconds)


class BoundedHTTPConnection(_DeadlineConnect, http.client.HTTPConnection):
    response_class = BoundedResponse


class BoundedHTTPSConnection(_DeadlineConnect, http.client.HTTPSConnection):
    response_class = BoundedResponse


class BoundedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):  # type: ignore[no-untyped-def]
        return self.do_open(BoundedHTTPConnection, req)


class BoundedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self) -> None:
        context = ssl.create_default_context()
        context.sslsocket_class = DeadlineSSLSocket
        super().__init__(context=context)

    def https_open(self, req):  # type: ignore[no-untyped-def]
        return self.do_open(BoundedHTTPSConnection, req, context=self._context)  # type: ignore[attr-defined]


class RefuseFTP(urllib.request.FTPHandler):
    """An ftp:// URL opened directly (a redirect to one is refused by :class:`BrowserRedirects`):
    only http(s) is downloaded."""

    message = "refused"

    def ftp_open(self, req):  # type: ignore[no-untyped-def]
        raise urllib.error.URLError(f"{self.message}: scheme 'ftp' is not downloaded, {ONLY_HTTP}")


class BrowserRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects followed as a browser follows them, within the policy: the URL a redirect leads
    to is encoded as a browser sends it (its host as UTS #46 maps it, see ``urls.py``: urllib
    would send a Location's ``faß.de`` percent-encoded), or refused when it cannot be; and a
    redirect to any scheme but http and https is refused, naming the scheme and the Location, not
    followed (urllib follows ftp and fails file:, data: or javascript: as an HTTP error)."""

    message = "refused"

    def http_error_302(self, req, fp, code, msg, headers):  # type: ignore[no-untyped-def,override]
        location = headers.get("location") or headers.get("uri")
        if location is not None:
            try:
                scheme = urlsplit(location).scheme
            except ValueError:
                scheme = ""  # urllib's own handling says what is wrong with it
            if scheme not in ("", "http", "https"):
                fp.close()
                shown = _tidy(location, MESSAGE_CHARS // 2)
                raise urllib.error.URLError(
                    f"{self.message}: a redirect (HTTP {code}) to a '{scheme}:' URL is not followed: scheme "
                    f"'{scheme}' is not downloaded, {ONLY_HTTP} (Location: {shown})")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        try:
            fetched = fetchable_url(newurl)
        except ValueError as exc:
            fp.close()
            raise urllib.error.URLError(
                f"{self.message}: a redirect (HTTP {code}) is not followed: the URL it leads to cannot be "
                f"encoded as a browser sends it: {exc}") from None
        return super().redirect_request(req, fp, code, msg, headers, fetched)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A ``Retry-After`` header's wait in seconds (delay-seconds or an HTTP-date), or None when
    absent or unreadable. A date in the past is 0."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt: 429/502/503/504, a connection refused/reset/closed, a timeout."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in RETRY_STATUSES
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return isinstance(reason, (ConnectionError, TimeoutError, http.client.RemoteDisconnected))


def _tidy(text: str, limit: int = MESSAGE_CHARS) -> str:
    """Text a server chose, fit to be a row's message: control characters escaped (a reason
    phrase may carry terminal escapes), and at most ``limit`` characters (its head and tail)."""
    text = CONTROL_CHARACTERS.sub(lambda match: f"\\x{ord(match.group()):02x}", text)
    if len(text) <= limit:
        return text
    tail = limit // 4
    cut = len(text) - limit
    return f"{text[:limit - tail]} …({cut:,} characters cut)… {text[-tail:]}"


def standard_phrase(code: int) -> str:
    """The reason phrase RFC 9110 gives ``code``; the server's own is never shown (see
    :func:`shown_error`)."""
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "(a status code without a standard reason phrase)"


def shown_error(exc: Exception) -> Exception:
    """``exc`` as a row's message may show it (img2dataset keeps ``str(exc)`` for every row). An
    HTTP error says its status code's standard phrase, not the server's reason phrase: the step
    classifies rows by their messages, and a 404 whose reason phrase was curate's own refusal
    made the row `refused`. Other text a server puts there (a redirect's Location: up to 64 KiB,
    which http.client allows a line) is tidied by :func:`_tidy`, after the message's start,
    which is what the step reads. ``exc`` itself when it needs nothing."""
    if isinstance(exc, urllib.error.HTTPError):
        reason, phrase = str(exc.msg), standard_phrase(exc.code)
        if reason.startswith(urllib.request.HTTPRedirectHandler.inf_msg):
            message = (f"{phrase} - the redirects went on for more than {MAX_REDIRECTS} hops, or back to "
                       f"one URL {MAX_REPEATS} times")
        elif reason.endswith(f" - Redirection to url '{exc.url}' is not allowed"):
            message = f"{phrase} - Redirection to url '{_tidy(exc.url)}' is not allowed"
        else:
            message = phrase
        if message == reason:
            return exc
        exc.close()
        return urllib.error.HTTPError(exc.url, exc.code, message, exc.headers, None)
    text = str(exc.reason) if isinstance(exc, urllib.error.URLError) else str(exc)
    tidy = _tidy(text)
    if tidy == text:
        return exc
    return urllib.error.URLError(tidy) if isinstance(exc, urllib.error.URLError) else OSError(tidy)


def _gave_up(exc: BaseException, attempts: int, why: str = "") -> BaseException:
    """The last attempt's error, saying how many attempts were made (img2dataset keeps str(exc))."""
    note = f"{GAVE_UP} {attempts} attempt{'s' if attempts > 1 else ''}{why}"
    if isinstance(exc, urllib.error.HTTPError):
        return urllib.error.HTTPError(exc.url, exc.code, f"{exc.msg} ({note})", exc.headers, None)
    if isinstance(exc, urllib.error.URLError):
        return urllib.error.URLError(f"{exc.reason} ({note})")
    return OSError(f"{exc} ({note})")


class _Slot:
    def __init__(self, semaphore: threading.Semaphore | None):
        self._semaphore = semaphore
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            semaphore, self._semaphore = self._semaphore, None
        if semaphore is not None:
            semaphore.release()


class HostGate:
    """Per host name, in this process: at most ``max_per_host`` attempts at once, and attempts
    started at most ``host_rate`` per second (each one is given the next free start time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._semaphores: dict[str, threading.Semaphore] = {}
        self._next_start: dict[str, float] = {}

    def enter(self, host: str, limits: FetchLimits) -> _Slot:
        semaphore = None
        if limits.max_per_host:
            with self._lock:
                semaphore = self._semaphores.setdefault(host, threading.Semaphore(limits.max_per_host))
            semaphore.acquire()
        if limits.host_rate:
            with self._lock:
                now = time.monotonic()
                start = max(now, self._next_start.get(host, now))
                self._next_start[host] = start + 1.0 / limits.host_rate
            if start > now:
                time.sleep(start - now)
        return _Slot(semaphore)


_gate = HostGate()


def _host(fullurl: object) -> str:
    url = fullurl.full_url if isinstance(fullurl, urllib.request.Request) else str(fullurl)
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


class DeadlineOpener(urllib.request.OpenerDirector):
    """An ``open()`` from outside is one row: it waits for its host's slot, and each attempt
    starts a clock; the ``open()`` calls urllib makes for redirects run inside an attempt and share
    its clock. Transient failures are retried (see the module's docstring)."""

    def open(self, fullurl, data=None, timeout=socket._GLOBAL_DEFAULT_TIMEOUT):  # type: ignore[no-untyped-def,override]
        if getattr(_attempt, "deadline", None) is not None:
            return super().open(fullurl, data, timeout)
        limits = _process_limits[0]
        host = _host(fullurl)
        attempt = 0
        while True:
            slot = _gate.enter(host, limits)
            try:
                response = self._attempt(fullurl, data, timeout)
            except Exception as exc:
                slot.release()
                if not is_transient(exc) or limits.retries == 0:
                    shown = shown_error(exc)
                    if shown is exc:
                        raise
                    raise shown from None
                wait = self._wait(exc, attempt, limits)
                shown = shown_error(exc)
                if isinstance(exc, urllib.error.HTTPError):
                    exc.close()
                if isinstance(wait, str) or attempt >= limits.retries:
                    raise _gave_up(shown, attempt + 1, wait if isinstance(wait, str) else "") from None
                attempt += 1
                time.sleep(wait)
                continue
            if isinstance(response, BoundedResponse):
                response.curate_release = slot.release
            else:
                slot.release()
            return response

    @staticmethod
    def _wait(exc: Exception, attempt: int, limits: FetchLimits) -> float | str:
        """Seconds to wait before the next attempt, or why there is none."""
        asked = None
        if isinstance(exc, urllib.error.HTTPError):
            asked = retry_after_seconds(exc.headers.get("Retry-After") if exc.headers else None)
        if asked is not None:
            if asked > limits.max_retry_wait:
                return (f"; the server asked to retry after {asked:g} s (Retry-After), longer than the download "
                        f"step's max_retry_wait ({limits.max_retry_wait:g} s), so it was not retried")
            return asked
        return min(limits.max_retry_wait, limits.backoff * 2**attempt * random.uniform(1.0, 1.25))

    def _attempt(self, fullurl, data, timeout):  # type: ignore[no-untyped-def]
        seconds = float(timeout) if isinstance(timeout, (int, float)) else None
        _attempt.deadline = None if seconds is None else time.monotonic() + seconds
        _attempt.seconds = seconds
        _attempt.opening = True
        try:
            return super().open(fullurl, data, timeout)
        finally:
            _attempt.deadline = _attempt.seconds = None
            _attempt.opening = False


def install_opener(limits: FetchLimits, proxies: dict[str, str] | None, refusal: str = "refused") -> None:
    """Make ``urllib.request.urlopen`` in this process fetch within the limits. ``proxies``:
    urllib's proxies (None: from the environment; {}: none at all). No file:, data: or ftp:."""
    _process_limits[0] = limits
    ftp = type("RefuseFTPHandler", (RefuseFTP,), {"message": refusal})
    redirects = type("RefusingRedirectHandler", (BrowserRedirects,), {"message": refusal})
    opener = DeadlineOpener()
    handlers = [
        urllib.request.ProxyHandler(proxies), urllib.request.UnknownHandler(), BoundedHTTPHandler(),
        BoundedHTTPSHandler(), urllib.request.HTTPDefaultErrorHandler(), redirects(), ftp(),
        urllib.request.HTTPErrorProcessor(),
    ]
    for handler in handlers:
        opener.add_handler(handler)
    urllib.request.install_opener(opener)
