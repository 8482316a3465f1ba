"""The fetch layer alone (fetch.py through worker.install), in a fresh interpreter since it
replaces urllib's opener and the socket module's create_connection: over plain HTTP and over
TLS, a drip-fed body ends at the deadline and a long one at max_bytes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import cli_env

pytestmark = pytest.mark.network
ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import ssl, sys, threading, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def log_message(self, *args): pass
        def do_GET(self):
            body = b"x" * (400 if self.path == "/drip" else 4000)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.path == "/drip":  # 100 s in all, 2 bytes every half second
                for i in range(0, len(body), 2):
                    time.sleep(0.5)
                    self.wfile.write(body[i:i + 2])
                    self.wfile.flush()
            else:
                self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    scheme = "http"
    if len(sys.argv) > 1:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[1], sys.argv[2])
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    threading.Thread(target=server.serve_forever, daemon=True).start()

    from curate_download.fetch import FetchLimits
    from curate_download.worker import NetworkPolicy, install
    install(NetworkPolicy(allow_private_networks=True), FetchLimits(max_bytes=1000))
    import urllib.request
    base = f"{scheme}://localhost:{server.server_address[1]}"
    for path, seconds in (("/drip", 2), ("/long", 30)):  # /long must end at max_bytes, not at a deadline
        started = time.monotonic()
        try:
            urllib.request.urlopen(base + path, timeout=seconds).read()
            print(path, "read everything")
        except Exception as exc:
            print(path, type(exc).__name__, round(time.monotonic() - started, 1), str(exc))
""")


def _run(tmp_path: Path, *args: str, **env: str) -> dict[str, list[str]]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=120,
                          env=cli_env([ROOT, ROOT / "plugins"], **env), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return {line.split()[0]: line.split() for line in done.stdout.splitlines()}


def _check(result: dict[str, list[str]]) -> None:
    assert result["/drip"][1] == "DeadlineExceeded" and float(result["/drip"][2]) < 10
    assert "timed out" in " ".join(result["/drip"])
    assert result["/long"][1] == "BodyTooLarge" and "max_bytes" in " ".join(result["/long"])


def test_http(tmp_path: Path) -> None:
    _check(_run(tmp_path))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command for a test certificate")
def test_https(tmp_path: Path) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out",
                    "cert.pem", "-days", "1", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1"], cwd=tmp_path, check=True, capture_output=True)
    _check(_run(tmp_path, "cert.pem", "key.pem", SSL_CERT_FILE=str(tmp_path / "cert.pem")))


HEADER_SCRIPT = textwrap.dedent("""
    import threading, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    def forever(write, data):  # until the client hangs up (or 60 s)
        started = time.monotonic()
        try:
            while time.monotonic() - started < 60:
                write(data)
        except OSError:
            pass

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def log_message(self, *args): pass
        def do_GET(self):
            w = self.wfile.write
            if self.path == "/huge-header":
                w(b"HTTP/1.1 200 OK\\r\\nX-A: " + b"a" * 70000 + b"\\r\\nContent-Length: 0\\r\\n\\r\\n")
            elif self.path == "/many-headers":
                w(b"HTTP/1.1 200 OK\\r\\n" + b"X-A: b\\r\\n" * 5000 + b"Content-Length: 0\\r\\n\\r\\n")
            elif self.path == "/continue-forever":
                forever(w, b"HTTP/1.1 100 Continue\\r\\n\\r\\n" * 100)
            elif self.path == "/trailers-forever":
                w(b"HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n1\\r\\na\\r\\n0\\r\\n")
                forever(w, b"X-T: y\\r\\n" * 1000)
            elif self.path == "/tiny-chunks":
                w(b"HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n")
                forever(w, b"1\\r\\na\\r\\n" * 10000)
            elif self.path == "/gzip":  # 1 MiB of zeros, gzipped: a client that inflated it would get 1 MiB
                import gzip
                body = gzip.compress(bytes(2**20))
                self.send_response(200)
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                w(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()

    from curate_download.fetch import FetchLimits
    from curate_download.worker import NetworkPolicy, install
    install(NetworkPolicy(allow_private_networks=True), FetchLimits(max_bytes=100_000))
    import urllib.request
    base = f"http://127.0.0.1:{server.server_address[1]}"
    # A deadline of 1 s for the two answers that never end; the others must end at their own limit,
    # well within 30 s (reading 100,000 one-byte chunks takes half a second of CPU, more than 1 s
    # on a loaded machine)
    for path, seconds in (("/huge-header", 30), ("/many-headers", 30), ("/continue-forever", 1),
                          ("/trailers-forever", 1), ("/tiny-chunks", 30), ("/gzip", 30)):
        try:
            print(path, "read", len(urllib.request.urlopen(base + path, timeout=seconds).read()))
        except Exception as exc:
            print(path, type(exc).__name__, str(exc))
""")


def test_header_and_framing_tricks_end_within_the_limits(tmp_path: Path) -> None:
    """http.client refuses a header line over 64 KiB and more than 100 headers; a server that
    sends 100 Continue or trailer lines forever meets the deadline; a body of one-byte chunks
    meets max_bytes; a gzip body is taken as sent (20 times smaller than inflated): nothing
    inflates it, so max_bytes bounds what arrives, not what it would inflate to."""
    done = subprocess.run([sys.executable, "-c", HEADER_SCRIPT], capture_output=True, text=True, timeout=120,
                          env=cli_env([ROOT, ROOT / "plugins"]), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in done.stdout.splitlines()}
    assert result["/huge-header"].startswith("LineTooLong")
    assert result["/many-headers"] == "HTTPException got more than 100 headers"
    assert result["/continue-forever"].startswith("DeadlineExceeded timed out")
    assert result["/trailers-forever"].startswith("DeadlineExceeded timed out")
    assert result["/tiny-chunks"].startswith("BodyTooLarge response body larger than max_bytes (100000 bytes)")
    read = int(result["/gzip"].removeprefix("read "))
    assert read < 2**20 // 20
