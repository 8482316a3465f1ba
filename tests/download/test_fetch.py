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
    for path in ("/drip", "/long"):
        started = time.monotonic()
        try:
            urllib.request.urlopen(base + path, timeout=2).read()
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
