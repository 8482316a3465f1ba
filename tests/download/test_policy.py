"""The network policy, decided without the network: schemes, IP literals, allow-lists."""

from __future__ import annotations

import ast
import ipaddress
import socket
import subprocess
import sys
import textwrap

import pytest
from curate_download.step import DownloadParams
from curate_download.worker import MAX_URL_LENGTH, REFUSED, NetworkPolicy, address_kind, embedded_ipv4, proxy_problem
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError


@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("::ffff:127.0.0.1", "loopback"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("10.1.2.3", "private"), ("192.168.0.10", "private"), ("172.16.5.4", "private"), ("fd00::1", "private"),
    ("0.0.0.0", "unspecified"), ("100.64.0.1", "non-public"),
    ("93.184.216.34", None), ("2606:4700::1111", None),
])
def test_address_kinds(address: str, kind: str | None) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/a.jpg", "https://[::1]/a.jpg", "http://localhost/a.jpg", "http://img.localhost/a.jpg",
    "http://169.254.169.254/latest/meta-data/", "http://10.0.0.7/x.png", "http://[::ffff:10.0.0.7]/x.png",
])
def test_private_hosts_are_refused_naming_the_setting(url: str) -> None:
    problem = NetworkPolicy().url_problem(url)
    assert problem is not None and problem.startswith(REFUSED)
    assert "allow_private_networks: true" in problem and "allowed_hosts" in problem


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.jpg", "data:image/png;base64,AAAA",
                                 "example.com/a.jpg", "gopher://x/"])
def test_only_http_and_https(url: str) -> None:
    problem = NetworkPolicy(allow_private_networks=True).url_problem(url)
    assert problem is not None and "only http and https" in problem


def test_what_is_allowed() -> None:
    assert NetworkPolicy().url_problem("https://example.com/a.jpg") is None  # names are checked at connect time
    assert NetworkPolicy().url_problem("http://93.184.216.34/a.jpg") is None
    assert NetworkPolicy(allow_private_networks=True).url_problem("http://127.0.0.1:9/a.jpg") is None
    assert NetworkPolicy(allowed_hosts=("127.0.0.1",)).url_problem("http://127.0.0.1:9/a.jpg") is None
    assert NetworkPolicy(allowed_hosts=("LocalHost",)).url_problem("http://localhost/a.jpg") is None
    assert NetworkPolicy(allowed_hosts=("10.0.0.0/8",)).url_problem("http://10.9.8.7/a.jpg") is None
    assert NetworkPolicy(allowed_hosts=("10.0.0.0/8",)).url_problem("http://192.168.1.1/a.jpg") is not None


def test_urls_longer_than_the_bound_are_refused_unparsed() -> None:
    """Python's URL parsing is quadratic in a run of combining marks in the host (NFKC): a
    600 000-character host took minutes in the step's own process, before anything was fetched."""
    from tests.bounded import finishes

    at_bound = "https://example.com/" + "a" * (MAX_URL_LENGTH - len("https://example.com/"))
    assert NetworkPolicy().url_problem(at_bound) is None
    problem = NetworkPolicy(allow_private_networks=True).url_problem(at_bound + "a")
    assert problem == f"{REFUSED}: the URL is {MAX_URL_LENGTH + 1} characters long, more than {MAX_URL_LENGTH}"
    finishes("""
        from curate_download.worker import REFUSED, NetworkPolicy
        assert NetworkPolicy().url_problem("http://a" + "\\u0301\\u0316" * 300_000 + ".com/").startswith(REFUSED)
    """)


def test_params_check_the_allow_list() -> None:
    with pytest.raises(ValidationError, match="not a host name or IP network"):
        DownloadParams(allowed_hosts=["10.0.0.0/33"])
    assert DownloadParams(allowed_hosts=[" cdn.internal "]).allowed_hosts == ["cdn.internal"]
    with pytest.raises(ValidationError):
        DownloadParams(drop_failed=["nope"])


def test_worker_count_does_not_change_the_fingerprint() -> None:
    a = DownloadParams(processes=1, threads=8).fingerprint_dict()
    b = DownloadParams(processes=4, threads=256).fingerprint_dict()
    assert a == b and "timeout" in a


def test_the_guard_checks_the_address_actually_dialled() -> None:
    """In a fresh interpreter (the guard patches the socket module): with only the name
    'localhost' allowed, the same loopback socket is refused when dialled by address; ftp, where
    a redirect may lead, is refused without connecting."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    code = textwrap.dedent(f"""
        import socket
        from curate_download.worker import NetworkPolicy, RefusedAddress, install_guard
        install_guard(NetworkPolicy(allowed_hosts=("localhost",)))
        for host in ("127.0.0.1", "::1"):
            try:
                socket.create_connection((host, {port}), timeout=2)
            except RefusedAddress as exc:
                assert "allow_private_networks" in str(exc), exc
            else:
                raise SystemExit(host + " was not refused")
        socket.create_connection(("localhost", {port}), timeout=2).close()
        import urllib.error, urllib.request
        try:
            urllib.request.urlopen("ftp://93.184.216.34/a.jpg", timeout=2)  # refused before connecting
        except urllib.error.URLError as exc:
            assert "only http and https" in str(exc), exc
        else:
            raise SystemExit("ftp was not refused")
        print("ok")
    """)
    try:
        done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    finally:
        listener.close()
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


# -- IPv6 forms that lead to an IPv4 host are judged as that host -----------------------------------

ipv4s = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)


def six_to_four(ip: ipaddress.IPv4Address, tail: int = 0) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address((0x2002 << 112) | (int(ip) << 80) | tail)


def nat64(ip: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | int(ip))


def mapped(ip: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(f"::ffff:{ip}")


def teredo(server: ipaddress.IPv4Address, client: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    """2001:0::/32, the server's address, flags and port, then the client's address XOR 0xffffffff."""
    return ipaddress.IPv6Address((0x20010000 << 96) | (int(server) << 64) | (0x1234 << 32) | (int(client) ^ 0xFFFFFFFF))


@given(ipv4s, st.integers(0, 2**80 - 1))
def test_6to4_is_judged_by_its_ipv4(ip: ipaddress.IPv4Address, tail: int) -> None:
    assert address_kind(six_to_four(ip, tail)) == address_kind(ip)


@given(ipv4s)
def test_nat64_and_mapped_are_judged_by_their_ipv4(ip: ipaddress.IPv4Address) -> None:
    assert address_kind(nat64(ip)) == address_kind(ip)
    assert address_kind(mapped(ip)) == address_kind(ip)


@given(ipv4s)
def test_teredo_is_judged_by_its_client(ip: ipaddress.IPv4Address) -> None:
    server = ipaddress.IPv4Address("65.54.227.120")  # a public Teredo server
    assert address_kind(teredo(server, ip)) == address_kind(ip)


@given(ipv4s)
def test_a_refusal_names_the_embedded_address(ip: ipaddress.IPv4Address) -> None:
    for wrapped in (six_to_four(ip), nat64(ip)):
        problem = NetworkPolicy().url_problem(f"http://[{wrapped}]/a.png")
        assert (problem is None) == (address_kind(ip) is None)
        if problem is not None:
            assert str(ip) in problem and "allow_private_networks" in problem


@given(st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address))
def test_no_ipv6_address_python_calls_non_global_is_allowed(ip: ipaddress.IPv6Address) -> None:
    """Except those that embed a public IPv4 address (Teredo's 2001::/32 lies in a non-global block)."""
    if not ip.is_global and embedded_ipv4(ip) is None:
        assert address_kind(ip) is not None


@pytest.mark.parametrize("address", ["2002:7f00:1::", "2002:a9fe:a9fe::1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",
                                     "64:ff9b:1::a00:1", "::127.0.0.1"])
def test_observed_forms_of_private_ipv4_are_refused(address: str) -> None:
    assert address_kind(ipaddress.ip_address(address)) is not None
    assert NetworkPolicy().url_problem(f"http://[{address}]:8080/a.jpg") is not None


# -- a proxy and the private-address check do not mix -------------------------------------------------

@pytest.mark.parametrize("variable", ["http_proxy", "HTTPS_PROXY", "all_proxy"])
def test_a_proxy_is_refused_with_the_guard(variable: str) -> None:
    problem = proxy_problem(NetworkPolicy(allowed_hosts=("proxy.internal",)), {variable: "http://proxy.internal:3128"})
    assert problem is not None and variable in problem and "allow_private_networks: true" in problem
    assert proxy_problem(NetworkPolicy(allow_private_networks=True), {variable: "http://proxy.internal:3128"}) is None
    assert proxy_problem(NetworkPolicy(), {"no_proxy": "localhost"}) is None


REDIRECT_SCRIPT = textwrap.dedent("""
    import socket, threading, urllib.error, urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def log_message(self, *args): pass
        def do_GET(self):
            seen.append(self.path)
            self.send_response(302)
            self.send_header("Location", self.path.removeprefix("/to/").replace("PORT", str(port)))
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()

    resolve = socket.getaddrinfo
    def fake_dns(host, *args, **kwargs):  # names a hostile DNS server points at private addresses
        fake = {"rebound.test": ["127.0.0.1"], "mixed.test": ["93.184.216.34", "127.0.0.1"],
                "mapped.test": ["::ffff:127.0.0.1"]}.get(host)
        if fake is None:
            return resolve(host, *args, **kwargs)
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, args[0]))
                for ip in fake]
    socket.getaddrinfo = fake_dns

    from curate_download.worker import NetworkPolicy, install
    install(NetworkPolicy(allowed_hosts=("localhost",)))
    for target in TARGETS:
        try:
            urllib.request.urlopen(f"http://localhost:{port}/to/{target}", timeout=5).read()
            print(target, "FETCHED")
        except Exception as exc:
            print(target, str(exc).replace(chr(10), " "))
    print("requests", sorted(set(seen)))
""")

REDIRECT_TARGETS = {  # where a public-looking page redirects: what the refusal must name
    "http://2130706433:PORT/secret": "loopback address (127.0.0.1)",  # decimal
    "http://0177.0.0.1:PORT/secret": "loopback address (127.0.0.1)",  # octal
    "http://0x7f.1:PORT/secret": "loopback address (127.0.0.1)",  # hex, short form
    "http://127.1:PORT/secret": "loopback address (127.0.0.1)",
    "http://[::ffff:127.0.0.1]:PORT/secret": "IPv4-mapped form of 127.0.0.1",
    "http://[::1]:PORT/secret": "loopback address (::1)",
    "http://0:PORT/secret": "an unspecified address (0.0.0.0)",
    "http://rebound.test:PORT/secret": "'rebound.test' resolves to a loopback address (127.0.0.1)",
    "http://mixed.test:PORT/secret": "'mixed.test' resolves to a loopback address (127.0.0.1)",
    "http://mapped.test:PORT/secret": "IPv4-mapped form of 127.0.0.1",
    "http://169.254.169.254/latest/meta-data/": "link-local address (169.254.169.254)",
    "http://10.0.0.1/secret": "private address (10.0.0.1)",
    "ftp://10.0.0.1/secret": "scheme 'ftp' is not downloaded",
    "file:///etc/passwd": "a redirect (HTTP 302) to a 'file:' URL is not followed: scheme 'file' is not",
    "data:,secret": "a redirect (HTTP 302) to a 'data:' URL is not followed",
    "javascript:alert(1)": "a redirect (HTTP 302) to a 'javascript:' URL is not followed",
    "http://localhost:PORT/to/http://localhost:PORT/to/http://127.0.0.1:PORT/secret": "loopback address (127.0.0.1)",
}


def test_every_redirect_hop_is_checked_on_the_address_dialled() -> None:
    """A page on an allowed host redirects to loopback in every spelling: decimal, octal and hex
    IPv4, IPv4-mapped IPv6, a DNS name answering with a loopback address (alone, beside a public
    one, or IPv4-mapped), after allowed hops; and to ftp, file, data and javascript URLs. Every hop is
    refused before it connects: the server never sees a request for /secret."""
    script = f"TARGETS = {list(REDIRECT_TARGETS)!r}\n" + REDIRECT_SCRIPT
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    results = dict(line.split(" ", 1) for line in lines[:-1])
    for target, expected in REDIRECT_TARGETS.items():
        assert expected in results[target], (target, results[target])
        assert REFUSED in results[target], (target, results[target])
    requested = ast.literal_eval(lines[-1].removeprefix("requests "))
    assert requested and all(path.startswith("/to/") for path in requested)
