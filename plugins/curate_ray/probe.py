"""Whether a Ray cluster's address answers, asked within a deadline before ``ray.init`` joins it.

``ray.init(address=…)`` gives up on an address that accepts connections and never answers (or
refuses them) only after ~821 s: 20 tries of its 30 s call to the GCS. That wait is set by Ray's
process-wide variables (``RAY_gcs_server_port_wait_time_s``, ``RAY_py_gcs_connect_timeout_s``);
changing them here would change it for everything else in the process and override what the user
set, so the address is asked first, with the standard library alone (grpcio comes with
``ray[client]``, not with the ``ray[data]`` curate needs).

The address asked is the one ``ray.init`` dials (curate_ray.address: where ``auto`` finds it, and
a loopback host as Ray rewrites it), and the error names both where they differ.

Answering means what ``ray.init`` needs first from any of Ray's gRPC servers (the GCS of
``HOST:PORT``, the client server of ``ray://HOST:PORT``): a TCP connection, the HTTP/2 handshake
(the server's SETTINGS frame), and an answer to one call. The call names a method no server has,
so a gRPC server answers it at once (UNIMPLEMENTED, or UNAUTHENTICATED where Ray wants a token)
and does nothing; only the answer's frame type is read, never its contents. Under ``RAY_USE_TLS``
the same happens inside TLS, with the client certificate Ray's own clients show; a server that
refuses the handshake with an alert has answered, and ``ray.init`` says what is wrong, as before.
An HTTP/2 server that answers the call with another HTTP status than gRPC's 200 (a proxy's 404) is
not a gRPC server: ray.init would retry it for ~20 s before "Failed to connect to Ray cluster".

A refused connection is tried again while a head may be starting (curate_ray.starting): the whole
deadline where the user set it, or where a head is starting on this machine for that port; else
for :data:`REFUSED_GRACE` seconds, and the address fails saying that nothing listens there. An
address that fails in another way at once (a name that does not resolve, a server that is not a
gRPC one) fails at once: waiting would not change it.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Callable

from curate.errors import CurateError
from curate_ray.address import ACCEPTED, ToJoin, form_problem, target
from curate_ray.deadlines import CONNECT_DEADLINE_ENV
from curate_ray.starting import on_this_machine, running_clusters, starting_head

# Ray's own: its servers speak TLS, and want its clients to show this certificate (mutual TLS).
TLS_SWITCH, TLS_CERTIFICATE, TLS_KEY = "RAY_USE_TLS", "RAY_TLS_SERVER_CERT", "RAY_TLS_SERVER_KEY"
RETRY_PAUSE = 0.5  # between connection attempts while nothing listens (a head that is starting)
# How long refused connections are tried with no sign of a head starting (curate_ray.starting): a
# head restarted by its supervisor, or one whose process Linux lists a moment late, is back by then.
REFUSED_GRACE = 2.0

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _RST_STREAM, _SETTINGS, _GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x7
_END_STREAM, _END_HEADERS, _ACK = 0x1, 0x4, 0x1
_METHOD = "/curate.ConnectionProbe/DoesNotExist"
_LARGEST_FRAME = 1 << 20  # a server's first frames are a few bytes; more is not a gRPC server
_PADDED, _PRIORITY = 0x8, 0x20
# HPACK's static table (RFC 7541 Appendix A): entries 8-14 are ':status' with these values.
_STATUSES = {8: "200", 9: "204", 10: "206", 11: "304", 12: "400", 13: "404", 14: "500"}


class _NoAnswer(Exception):
    """What the address did instead of answering; ``waited``: whether it took the whole deadline to
    say so (else it said so at once, and a longer deadline would change nothing)."""

    def __init__(self, what: str, waited: bool = False):
        super().__init__(what)
        self.waited = waited


class _NothingListens(_NoAnswer):
    """Connections were refused for ``tried`` seconds, and no head is starting to take them."""

    def __init__(self, last: OSError | None, tried: float):
        super().__init__(f"no TCP connection for {tried:.0f} s ({last})")
        self.last, self.tried = last, tried


def check_answers(joining: ToJoin, seconds: float, wait_while_refused: bool = False) -> None:
    """Return once the address ray.init dials for ``joining`` answers as a Ray cluster's gRPC server
    does; raise a CurateError naming it (as named and as dialled), where it was found and what it did
    instead if it does not within ``seconds``. Refused connections are tried for all of ``seconds``
    with ``wait_while_refused`` (the user set the deadline), or while a head is starting on this
    machine for that port; otherwise for :data:`REFUSED_GRACE` seconds."""
    dialled = target(joining.dials)
    if dialled is None:
        if joining.dials == "local":  # RAY_ADDRESS=local: ray.init starts a cluster, nothing to wait for
            return
        # Not askable (another scheme, a port out of range, spaces): ray.init would wait ~821 s on it
        # unasked. The spec's own address was refused at validation; this one auto found elsewhere.
        found = f"address: auto found it in {joining.found_in}" if joining.found_in else "named in the spec"
        raise CurateError(
            f"the Ray cluster address {joining.address!r} ({found}) "
            f"{form_problem(joining.address) or 'cannot be checked'}; "
            f"curate joins only an address it can check first: {ACCEPTED}",
            hint=joining.fix,
        )
    host, port = dialled
    client = joining.dials.startswith("ray://")
    tls = os.environ.get(TLS_SWITCH, "0").lower() in ("1", "true")

    def keep_waiting(sockaddrs: list[tuple]) -> bool:
        return wait_while_refused or (on_this_machine(sockaddrs) and starting_head(port, client) is not None)

    tried = (f"tried: a TCP connection to {_authority(host, port)}, the HTTP/2 handshake"
             f"{' inside TLS' if tls else ''} and one gRPC call")
    try:
        _ask(host, port, tls, time.monotonic() + seconds, keep_waiting)
    except _NothingListens as exc:
        raise CurateError(
            f"the Ray cluster at {joining.where} did not answer: a TCP connection to "
            f"{_authority(host, port)}, tried every {RETRY_PAUSE:g} s for {exc.tried:.0f} s, failed "
            f"({exc.last}): nothing listens there, and {_no_head_starting(host, port, client)}",
            hint=f"{joining.fix}. 'ray status' on the head prints its address{_running_here(client)}; to run "
            f"without that cluster, set run.executor to local; to wait for a head that is still starting, "
            f"set {CONNECT_DEADLINE_ENV}=SECONDS (the run then waits that long for it)",
        ) from None
    except _NoAnswer as exc:
        if exc.waited:
            raise CurateError(
                f"the Ray cluster at {joining.where} did not answer in {seconds:g} s: {exc} ({tried})",
                hint=f"{joining.fix}; if it is only slow to answer, give it longer with "
                f"{CONNECT_DEADLINE_ENV}=SECONDS (now {seconds:g})",
            ) from None
        raise CurateError(
            f"the Ray cluster at {joining.where} did not answer: {exc} ({tried})",
            hint=f"{joining.fix}; 'ray status' on the head prints its address{_running_here(client)}",
        ) from None


def _no_head_starting(host: str, port: int, client: bool) -> str:
    what = "client server" if client else "GCS"
    try:
        here = on_this_machine([info[4] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)])
    except OSError:
        here = False
    if here:
        return (f"no Ray head is starting on this machine for port {port} (no 'ray start --head' or Ray "
                f"{what} process for it)")
    return (f"{host} is another machine, whose processes curate cannot see to tell whether a head is "
            "starting there")


def _running_here(client: bool) -> str:
    """The clusters running on this machine, for a hint (a ray:// address names a client server's
    port, which their GCS addresses do not show)."""
    clusters = running_clusters()
    if not clusters:
        return ""
    if client:
        return f" (a Ray cluster runs on this machine, its GCS at {', '.join(clusters)})"
    return f" (this machine's Ray cluster{'s are' if len(clusters) > 1 else ' is'} at {', '.join(clusters)})"


def answers(host: str, port: int, seconds: float) -> str | None:
    """None where the gRPC server at ``host:port`` answers within ``seconds`` (asked as
    :func:`check_answers` asks); otherwise what it did instead."""
    try:
        _ask(host, port, os.environ.get(TLS_SWITCH, "0").lower() in ("1", "true"), time.monotonic() + seconds)
    except _NoAnswer as exc:
        return str(exc)
    return None


def _ask(host: str, port: int, tls: bool, deadline: float,
         keep_waiting: Callable[[list[tuple]], bool] | None = None) -> None:
    sock = _connect(host, port, deadline, keep_waiting)
    try:
        if tls:
            try:
                wrapped = _tls(sock, host, deadline)
                if wrapped is None:
                    return
                sock = wrapped
                _grpc_call(sock, host, port, "https", deadline)
            except ssl.SSLEOFError:
                raise _NoAnswer("it closed the TLS connection") from None
            except ssl.SSLError:  # refused our handshake or our certificate: a TLS server that answers
                return
        else:
            _grpc_call(sock, host, port, "http", deadline)
    finally:
        sock.close()


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _look_up(host: str, port: int, deadline: float) -> list[tuple]:
    """getaddrinfo in a thread of its own: the resolver's own timeouts are the system's."""
    found: list = []
    done = threading.Event()

    def look_up() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            found.append(exc)
        done.set()

    threading.Thread(target=look_up, name=f"curate-ray-resolve-{host}", daemon=True).start()
    if not done.wait(max(0.0, deadline - time.monotonic())):
        raise _NoAnswer(f"looking up {host!r} did not finish", waited=True)
    if isinstance(found[0], OSError):
        raise _NoAnswer(f"cannot look up {host!r} ({found[0]})")
    return found[0]


def _connect(host: str, port: int, deadline: float,
             keep_waiting: Callable[[list[tuple]], bool] | None) -> socket.socket:
    """A connection to any of the host's addresses, tried again while none accepts one (a head that
    is starting listens a few seconds later): until the deadline, or with ``keep_waiting`` (asked with
    the addresses), past :data:`REFUSED_GRACE` only while it says so."""
    addresses = _look_up(host, port, deadline)
    started = time.monotonic()
    last: OSError | None = None
    while True:
        for family, kind, protocol, _, sockaddr in addresses:
            sock = socket.socket(family, kind, protocol)
            try:
                sock.settimeout(_remaining(deadline))
                sock.connect(sockaddr)
                return sock
            except TimeoutError:
                sock.close()
                raise _NoAnswer(f"no TCP connection (last: {last or 'the connection attempt timed out'})",
                                waited=True) from None
            except OSError as exc:
                sock.close()
                last = exc
        if deadline - time.monotonic() <= RETRY_PAUSE:
            raise _NoAnswer(f"no TCP connection (last: {last})", waited=True)
        tried = time.monotonic() - started
        if keep_waiting is not None and tried >= REFUSED_GRACE \
                and not keep_waiting([address[4] for address in addresses]):
            raise _NothingListens(last, tried)
        time.sleep(RETRY_PAUSE)


def _tls(sock: socket.socket, host: str, deadline: float) -> ssl.SSLSocket | None:
    """The connection inside TLS, showing the certificate Ray's own clients show (its servers want
    one); None where those files are not set or do not load: ray.init says so at once."""
    # Nothing of value is sent (a call to a method no server has), so the server's certificate is
    # not checked here; ray.init checks it against the cluster's CA.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    certificate, key = os.environ.get(TLS_CERTIFICATE), os.environ.get(TLS_KEY)
    if not certificate or not key:
        return None
    try:
        context.load_cert_chain(certificate, key)
    except (OSError, ValueError):  # ssl.SSLError is an OSError
        return None
    wrapped = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)  # takes sock's fd
    try:
        wrapped.settimeout(_remaining(deadline))
        wrapped.do_handshake()
    except TimeoutError:
        wrapped.close()
        raise _NoAnswer("it accepted the connection and never finished the TLS handshake",
                        waited=True) from None
    except BaseException:
        wrapped.close()
        raise
    return wrapped


def _grpc_call(sock: socket.socket, host: str, port: int, scheme: str, deadline: float) -> None:
    try:
        sock.settimeout(_remaining(deadline))
        sock.sendall(_PREFACE + _frame(_SETTINGS, 0, 0, b""))
        kind, flags, stream, _ = _read_frame(sock, deadline, "it accepted the connection and sent nothing")
        if kind != _SETTINGS or stream != 0 or flags & _ACK:
            raise _NoAnswer("its first bytes are not a gRPC server's (an HTTP/2 SETTINGS frame)")
        headers = b"".join(_literal(name, value) for name, value in (
            (":method", "POST"), (":scheme", scheme), (":path", _METHOD), (":authority", _authority(host, port)),
            ("content-type", "application/grpc"), ("te", "trailers")))
        sock.settimeout(_remaining(deadline))
        sock.sendall(_frame(_SETTINGS, _ACK, 0, b"") + _frame(_HEADERS, _END_HEADERS, 1, headers)
                     + _frame(_DATA, _END_STREAM, 1, b"\0\0\0\0\0"))  # an empty, uncompressed message
        while True:
            kind, flags, stream, payload = _read_frame(
                sock, deadline, "it completed the HTTP/2 handshake and never answered a call")
            if kind == _HEADERS and stream == 1 and (status := _status(flags, payload)) not in (None, "200"):
                raise _NoAnswer(f"an HTTP/2 server answered the call with HTTP status {status}, as no gRPC "
                                "server (Ray's) does: something else listens there")
            if kind == _GOAWAY or (stream == 1 and kind in (_HEADERS, _RST_STREAM)):
                return
    except TimeoutError:  # sending: it reads nothing (waits for an answer are _read_frame's)
        raise _NoAnswer("it stopped reading what was sent to it", waited=True) from None
    except ssl.SSLError:
        raise
    except OSError as exc:
        raise _NoAnswer(f"the connection failed ({exc})") from None


def _read_frame(sock: socket.socket, deadline: float, silent: str) -> tuple[int, int, int, bytes]:
    """The type, flags, stream and payload of the next frame."""
    try:
        header = _read(sock, 9, deadline)
        length = int.from_bytes(header[:3], "big")
        if length > _LARGEST_FRAME:
            raise _NoAnswer("it sent what is not HTTP/2")
        payload = _read(sock, length, deadline)
    except TimeoutError:
        raise _NoAnswer(silent, waited=True) from None
    return header[3], header[4], int.from_bytes(header[5:], "big") & 0x7FFFFFFF, payload


def _status(flags: int, payload: bytes) -> str | None:
    """The HTTP status a HEADERS frame starts with, where it is written plainly enough to read
    without an HPACK decoder (gRPC servers send an indexed ':status 200', byte 0x88); None where it
    is not (no :status first, a Huffman-coded value, a header block split over frames)."""
    block = payload
    if flags & _PADDED:
        block = block[1:len(block) - block[0]] if block and block[0] < len(block) else b""
    if flags & _PRIORITY:
        block = block[5:]
    while block and block[0] & 0xE0 == 0x20 and block[0] != 0x3F:  # dynamic table size updates (one byte)
        block = block[1:]
    if not block:
        return None
    first = block[0]
    if first & 0x80:  # an indexed field
        return _STATUSES.get(first & 0x7F)
    # A literal field whose name is a :status entry: 01xxxxxx (6-bit index) or 000x xxxx (4-bit index).
    index = first & 0x3F if first & 0x40 else first & 0x0F
    if index not in _STATUSES or len(block) < 2 or block[1] & 0x80:  # not :status, or a Huffman-coded value
        return None
    value = block[2:2 + (block[1] & 0x7F)]
    return value.decode("ascii") if len(value) == block[1] & 0x7F and value.isdigit() else None


def _read(sock: socket.socket, size: int, deadline: float) -> bytes:
    data = bytearray()
    while len(data) < size:
        sock.settimeout(_remaining(deadline))
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise _NoAnswer("it closed the connection")
        data += chunk
    return bytes(data)


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def _literal(name: str, value: str) -> bytes:
    """An HPACK header field, literal and not indexed (RFC 7541 §6.2.2), its strings not Huffman-coded."""
    return b"\0" + _string(name.encode()) + _string(value.encode())


def _string(data: bytes) -> bytes:
    length, encoded = len(data), bytearray()
    if length < 127:  # the length is an integer with a 7-bit prefix (RFC 7541 §5.1)
        encoded.append(length)
    else:
        encoded.append(127)
        length -= 127
        while length >= 128:
            encoded.append(length % 128 + 128)
            length //= 128
        encoded.append(length)
    return bytes(encoded) + data


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
