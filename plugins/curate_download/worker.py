"""Who may be fetched, and the process that fetches.

The download step runs ``img2dataset.download`` in a child process started from this file
(``python worker.py JOB``), for three reasons: img2dataset installs a SIGINT handler that exits
with status 0 and prints progress to stdout, neither of which belongs in the curate process; the
child is killed as a group when the step is interrupted; and it is how the network policy reaches
the processes that open sockets. img2dataset's multiprocessing distributor *spawns* its workers,
and a spawned process first re-runs its parent's main script (as ``__mp_main__``). Run as that
script, this file installs a guard around ``socket.create_connection`` in every fetching process,
so a redirect to, or a DNS answer for, a private address is refused at connect time, on the
address actually dialled.

So this file imports only the standard library and never the ``curate_download`` package:
each spawned process pays for img2dataset's imports already, and nothing more.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

POLICY_ENV = "CURATE_DOWNLOAD_POLICY"
ALLOWED_SCHEMES = ("http", "https")
# Every refusal message starts with this, so the step can tell a refusal from a failure even after
# urllib wrapped it ("<urlopen error refused by …>").
REFUSED = "refused by the download step's network policy"
PARENT_POLL_SECONDS = 0.5
OPTIONAL_IMPORTS = ("torch", "ray")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class RefusedAddress(OSError):
    """A connection the network policy forbids; urllib reports it as the row's error."""


def address_kind(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public internet address, or None when it is."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "non-public"
    return None


@dataclass(frozen=True)
class NetworkPolicy:
    """Only http(s); hosts that are (or resolve to) non-public addresses only when allowed."""

    allow_private_networks: bool = False
    allowed_hosts: tuple[str, ...] = ()  # host names, or IP networks such as 10.1.0.0/16

    def to_json(self) -> str:
        return json.dumps({"allow_private_networks": self.allow_private_networks,
                           "allowed_hosts": list(self.allowed_hosts)})

    @classmethod
    def from_json(cls, text: str) -> NetworkPolicy:
        data = json.loads(text)
        return cls(bool(data["allow_private_networks"]), tuple(data["allowed_hosts"]))

    def _networks(self) -> list[IPNetwork]:
        networks = []
        for entry in self.allowed_hosts:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                pass
        return networks

    def host_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return self.allow_private_networks or host in {h.lower().rstrip(".") for h in self.allowed_hosts}

    def address_problem(self, host: str, address: str) -> str | None:
        """The refusal message for connecting to ``address`` on behalf of ``host``, or None."""
        if self.host_allowed(host):
            return None
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        kind = address_kind(ip)
        if kind is None or any(ip in network for network in self._networks()):
            return None
        via = f"host '{host}' is" if host == str(ip) else f"host '{host}' resolves to"
        return (f"{REFUSED}: {via} a {kind} address ({ip}); private, loopback and link-local addresses "
                f"are not downloaded unless the download step's params set `allow_private_networks: true` "
                f"or list the host in `allowed_hosts: ['{host}']`")

    def url_problem(self, url: str) -> str | None:
        """A refusal decided from the URL alone (scheme, IP literal, localhost): no DNS lookup."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError as exc:
            return f"{REFUSED}: the URL cannot be parsed ({exc})"
        scheme = parts.scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            shown = f"scheme '{scheme}'" if scheme else "a URL without a scheme"
            return f"{REFUSED}: {shown} is not downloaded, only http and https are"
        if not host:
            return f"{REFUSED}: the URL has no host"
        if host == "localhost" or host.endswith(".localhost"):  # loopback by definition (RFC 6761)
            return self.address_problem(host, "127.0.0.1")
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return None  # a name: checked when the fetching process resolves it
        return self.address_problem(host, host)


def install_guard(policy: NetworkPolicy) -> None:
    """Make ``socket.create_connection`` (what urllib and http.client dial with) resolve the host
    itself, refuse it if any address is forbidden, and connect to a vetted address: the name is
    never resolved a second time, so a changing DNS answer cannot slip past the check. Also
    refuse ftp, where a redirect may lead."""
    original = socket.create_connection
    if getattr(original, "curate_policy", None) is not None:
        return

    def create_connection(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None, **kwargs):  # type: ignore[no-untyped-def]
        host, port = address[0], address[1]
        if policy.host_allowed(host):
            return original(address, timeout, source_address, **kwargs)
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        for info in infos:
            problem = policy.address_problem(host, info[4][0])
            if problem is not None:
                raise RefusedAddress(problem)
        error: OSError | None = None
        for info in infos:
            try:
                return original((info[4][0], port), timeout, source_address, **kwargs)
            except OSError as exc:
                error = exc
        raise error if error is not None else OSError(f"no address for {host}")

    create_connection.curate_policy = policy  # type: ignore[attr-defined]
    socket.create_connection = create_connection
    _refuse_ftp()


def _refuse_ftp() -> None:
    """urllib follows redirects to ftp:// as well; only http(s) is downloaded, redirected or not."""
    import urllib.error
    import urllib.request

    class RefuseFTP(urllib.request.FTPHandler):
        def ftp_open(self, req):  # type: ignore[no-untyped-def]
            raise urllib.error.URLError(f"{REFUSED}: scheme 'ftp' is not downloaded, only http and https are")

    urllib.request.install_opener(urllib.request.build_opener(RefuseFTP))


def _install_guard_from_environment() -> None:
    text = os.environ.get(POLICY_ENV)
    if text:
        install_guard(NetworkPolicy.from_json(text))


def _die_with_parent() -> None:
    """If the curate process dies (even by SIGKILL), take img2dataset's processes down with us:
    its logger process never exits on its own."""
    parent = os.getppid()
    own_group = os.getpgrp() == os.getpid()

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_SECONDS)
            if os.getppid() != parent:
                if own_group:
                    os.killpg(os.getpgrp(), signal.SIGKILL)
                os._exit(1)

    threading.Thread(target=watch, name="curate-download-watchdog", daemon=True).start()


def main(job_path: str) -> None:
    with open(job_path) as handle:
        job = json.load(handle)
    _die_with_parent()
    _install_guard_from_environment()
    import img2dataset

    img2dataset.download(**job)


if __name__ in ("__main__", "__mp_main__"):
    # Run as a script, this file's directory heads sys.path; drop it so that nothing in it can
    # shadow a module img2dataset imports. Spawned children inherit the cleaned path.
    if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
        sys.path.pop(0)
    # img2dataset reaches torch (webdataset's optional torch interop) and ray (an optional
    # distributor) only through imports that fall back when they are missing, and uses neither
    # here; where they are installed they cost seconds of start-up in every spawned process.
    for _optional in OPTIONAL_IMPORTS:
        sys.modules.setdefault(_optional, None)  # type: ignore[assignment]
    _install_guard_from_environment()

if __name__ == "__main__":
    main(sys.argv[1])
