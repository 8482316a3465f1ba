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
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time

from curate.errors import CurateError
from curate_ray.address import ACCEPTED, ToJoin, form_problem, target
from curate_ray.deadlines import CONNECT_DEADLINE_ENV

# Ray's own: its servers speak TLS, and want its clients to show this certificate (mutual TLS).
TLS_SWITCH, TLS_CERTIFICATE, TLS_KEY = "RAY_USE_TLS", "RAY_TLS_SERVER_CERT", "RAY_TLS_SERVER_KEY"
RETRY_PAUSE = 0.5  # between connection attempts while nothing listens (a head that is starting)

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _RST_STREAM, _SETTINGS, _GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x7
_END_STREAM, _END_HEADERS, _ACK = 0x1, 0x4, 0x1
_METHOD = "/curate.ConnectionProbe/DoesNotExist"
_LARGEST_FRAME = 1 << 20  # a server's first frames are a few bytes; more is not a gRPC server


class _NoAnswer(Exception):
    """What the address did instead of answering."""


def check_answers(joining: ToJoin, seconds: float) -> None:
    """Return once the address ray.init dials for ``joining`` answers as a Ray cluster's gRPC server
    does; raise a CurateError naming it (as named and as dialled), where it was found and what it did
    instead if it does not within ``seconds``."""
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
    tls = os.environ.get(TLS_SWITCH, "0").lower() in ("1", "true")
    try:
        _ask(host, port, tls, time.monotonic() + seconds)
    except _NoAnswer as exc:
        raise CurateError(
            f"the Ray cluster at {joining.where} did not answer in {seconds:g} s: {exc} (tried: "
            f"a TCP connection to {_authority(host, port)}, the HTTP/2 handshake"
            f"{' inside TLS' if tls else ''} and one gRPC call)",
            hint=f"{joining.fix}; if it is only slow to answer, give it longer with "
            f"{CONNECT_DEADLINE_ENV}=SECONDS (now {seconds:g})",
        ) from None


def answers(host: str, port: int, seconds: float) -> str | None:
    """None where the gRPC server at ``host:port`` answers within ``seconds`` (asked as
    :func:`check_answers` asks); otherwise what it did instead."""
    try:
        _ask(host, port, os.environ.get(TLS_SWITCH, "0").lower() in ("1", "true"), time.monotonic() + seconds)
    except _NoAnswer as exc:
        return str(exc)
    return None


def _ask(host: str, port: int, tls: bool, deadline: float) -> None:
    sock = _connect(host, port, deadline)
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
        raise _NoAnswer(f"looking up {host!r} did not finish")
    if isinstance(found[0], OSError):
        raise _NoAnswer(f"cannot look up {host!r} ({found[0]})")
    return found[0]


def _connect(host: str, port: int, deadline: float) -> socket.socket:
    """A connection to any of the host's addresses, tried again until the deadline while none
    accepts one (a head that is starting listens a few seconds later)."""
    addresses = _look_up(host, port, deadline)
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
                raise _NoAnswer(f"no TCP connection (last: {last or 'the connection attempt timed out'})") from None
            except OSError as exc:
                sock.close()
                last = exc
        if deadline - time.monotonic() <= RETRY_PAUSE:
            raise _NoAnswer(f"no TCP connection (last: {last})")
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
        raise _NoAnswer("it accepted the connection and never finished the TLS handshake") from None
    except BaseException:
        wrapped.close()
        raise
    return wrapped


def _grpc_call(sock: socket.socket, host: str, port: int, scheme: str, deadline: float) -> None:
    try:
        sock.settimeout(_remaining(deadline))
        sock.sendall(_PREFACE + _frame(_SETTINGS, 0, 0, b""))
        kind, flags, stream = _read_frame(sock, deadline, "it accepted the connection and sent nothing")
        if kind != _SETTINGS or stream != 0 or flags & _ACK:
            raise _NoAnswer("its first bytes are not a gRPC server's (an HTTP/2 SETTINGS frame)")
        headers = b"".join(_literal(name, value) for name, value in (
            (":method", "POST"), (":scheme", scheme), (":path", _METHOD), (":authority", _authority(host, port)),
            ("content-type", "application/grpc"), ("te", "trailers")))
        sock.settimeout(_remaining(deadline))
        sock.sendall(_frame(_SETTINGS, _ACK, 0, b"") + _frame(_HEADERS, _END_HEADERS, 1, headers)
                     + _frame(_DATA, _END_STREAM, 1, b"\0\0\0\0\0"))  # an empty, uncompressed message
        while True:
            kind, _, stream = _read_frame(sock, deadline, "it completed the HTTP/2 handshake and never answered a call")
            if kind == _GOAWAY or (stream == 1 and kind in (_HEADERS, _RST_STREAM)):
                return
    except TimeoutError:  # sending: it reads nothing (waits for an answer are _read_frame's)
        raise _NoAnswer("it stopped reading what was sent to it") from None
    except ssl.SSLError:
        raise
    except OSError as exc:
        raise _NoAnswer(f"the connection failed ({exc})") from None


def _read_frame(sock: socket.socket, deadline: float, silent: str) -> tuple[int, int, int]:
    """The type, flags and stream of the next frame (its payload read and dropped)."""
    try:
        header = _read(sock, 9, deadline)
        length = int.from_bytes(header[:3], "big")
        if length > _LARGEST_FRAME:
            raise _NoAnswer("it sent what is not HTTP/2")
        _read(sock, length, deadline)
    except TimeoutError:
        raise _NoAnswer(silent) from None
    return header[3], header[4], int.from_bytes(header[5:], "big") & 0x7FFFFFFF


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
