"""Who may be fetched, and the process that fetches.

The download step runs ``img2dataset.download`` in a child process started from this file
(``python worker.py JOB``), for three reasons: img2dataset installs a SIGINT handler that exits
with status 0 and prints progress to stdout, neither of which belongs in the curate process; the
child is killed as a group when the step is interrupted; and it is how the network policy reaches
the processes that open sockets. img2dataset's multiprocessing distributor *spawns* its workers,
and a spawned process first re-runs its parent's main script (as ``__mp_main__``). Run as that
script, this file installs a guard around ``socket.create_connection`` in every fetching process,
so a redirect to, or a DNS answer for, a private address is refused at connect time, on the
address actually dialled, and urllib's opener from ``fetch.py`` (a deadline per attempt, caps on
bytes, pixels and decoding memory). In the worker's own process a thread watches img2dataset's
processes, so a killed one fails the step instead of hanging it.

So this file imports only the standard library and img2dataset's resizer (to give each body's
bytes back to ``max_buffered_bytes`` once decoded, see :func:`release_bodies_when_decoded`, and
to decode images as browsers show them, see ``pixels.py``, which reads EXIF orientation with
``curate.jpeg``: standard library, under curate's cheap ``__init__``), never
the ``curate_download`` package (``fetch.py`` and its ``header.py``, stdlib too, and ``urls.py``,
which imports the ``idna`` package only for a host that needs it, come from a stand-in package for
this directory, see :func:`_sibling`): each spawned process pays for img2dataset's imports
already, and nothing more.
"""

from __future__ import annotations

import functools
import importlib
import ipaddress
import json
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit


STANDALONE_PACKAGE = "_curate_download"  # this directory as a package, without its __init__


def _sibling(name: str) -> ModuleType:
    """A stdlib-only module of this package. Run as a script (and as every spawned process's
    ``__mp_main__``), this file is outside its package, whose ``__init__`` imports curate:
    import the module from a stand-in package for this directory instead, whose ``__init__``
    is never run, so that its own relative imports (fetch's ``from .header import``) work."""
    if __package__:
        return importlib.import_module(f"{__package__}.{name}")
    if STANDALONE_PACKAGE not in sys.modules:
        package = ModuleType(STANDALONE_PACKAGE)
        package.__path__ = [str(Path(__file__).parent)]
        sys.modules[STANDALONE_PACKAGE] = package
    return importlib.import_module(f"{STANDALONE_PACKAGE}.{name}")


fetch = _sibling("fetch")
urls = _sibling("urls")
pixels = _sibling("pixels")
fetchable_url = urls.fetchable_url  # the step, and tests, take it from here

POLICY_ENV = "CURATE_DOWNLOAD_POLICY"
ALLOWED_SCHEMES = ("http", "https")
# Every refusal message starts with this, so the step can tell a refusal from a failure even after
# urllib wrapped it ("<urlopen error refused by …>").
REFUSED = "refused by the download step's network policy"
# Longer URLs are refused unread. RFC 9110 asks servers to take 8000 octets, common servers stop
# at 8 or 16 KiB, and Python's URL parsing normalizes a non-ASCII host (NFKC) in time quadratic in
# a run of combining marks: a 200 000-character host took 35 s, in the step's own process.
MAX_URL_LENGTH = 16384
PARENT_POLL_SECONDS = 0.5
CHILD_POLL_SECONDS = 0.2
PARENT_ENV = "CURATE_DOWNLOAD_PARENT"  # the curate process's pid: the worker dies with it
PARTS_ENV = "CURATE_DOWNLOAD_PARTS"  # how many parts the job has: their stats files mark them done
CHILD_DIED_EXIT = 86  # the worker's exit status when one of img2dataset's processes died
CHILD_DIED_FILE = "worker.error"  # beside job.json: what died, for the step's error message
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")
OPTIONAL_IMPORTS = ("torch", "ray")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class RefusedAddress(OSError):
    """A connection the network policy forbids; urllib reports it as the row's error."""


NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052's well-known prefix
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local-use, the IPv4 in the last 32 bits
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d


def embedded_ipv4(ip: IPAddress) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address leads to, and the form that embeds it: IPv4-mapped,
    6to4 (2002::/16), NAT64 (64:ff9b::/96, 64:ff9b:1::/48), IPv4-compatible, or Teredo (the
    client). A connection to such an address reaches that IPv4 host, so it is judged as that host."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "IPv4-mapped"
    if ip.sixtofour is not None:
        return ip.sixtofour, "6to4"
    if ip.teredo is not None:
        return ip.teredo[1], "Teredo"
    last32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in NAT64 or ip in NAT64_LOCAL:
        return last32, "NAT64"
    if ip in IPV4_COMPATIBLE and int(ip) > 1:
        return last32, "IPv4-compatible"
    return None


def address_kind(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public internet address, or None when it is. An IPv6 address that
    embeds an IPv4 one (see :func:`embedded_ipv4`) is what its IPv4 address is."""
    embedded = embedded_ipv4(ip)
    if embedded is not None:
        if isinstance(ip, ipaddress.IPv6Address) and ip.teredo is not None:
            server = address_kind(ip.teredo[0])
            if server is not None:
                return server
        ip = embedded[0]
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

    @functools.cached_property
    def _allowed(self) -> frozenset[str]:
        return frozenset(allowed_form(entry) for entry in self.allowed_hosts)

    def host_allowed(self, host: str) -> bool:
        """``host`` (as fetched: the name a browser looks up, see ``urls.browser_host``) is listed in
        ``allowed_hosts``, as a browser would take the entry: ``faß.de`` allows ``xn--fa-hia.de``,
        not ``fass.de``; ``ＥＸＡＭＰＬＥ.com`` allows ``example.com``."""
        return self.allow_private_networks or host.lower().rstrip(".") in self._allowed

    def address_problem(self, host: str, address: str) -> str | None:
        """The refusal message for connecting to ``address`` on behalf of ``host``, or None."""
        if self.host_allowed(host):
            return None
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        kind = address_kind(ip)
        if kind is None or any(ip in network for network in self._networks()):
            return None
        via = f"host '{host}' is" if host == str(ip) else f"host '{host}' resolves to"
        embedded = embedded_ipv4(ip)
        shown = f"{ip}, the {embedded[1]} form of {embedded[0]}" if embedded else str(ip)
        article = "an" if kind[0] in "aeiou" else "a"
        return (f"{REFUSED}: {via} {article} {kind} address ({shown}); private, loopback and link-local addresses "
                f"are not downloaded unless the download step's params set `allow_private_networks: true` "
                f"or list the host in `allowed_hosts: ['{host}']`")

    def url_problem(self, url: str) -> str | None:
        """A refusal decided from the URL alone (length, scheme, IP literal, localhost): no DNS lookup."""
        if len(url) > MAX_URL_LENGTH:
            return f"{REFUSED}: the URL is {len(url)} characters long, more than {MAX_URL_LENGTH}"
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


def allowed_form(entry: str) -> str:
    """An ``allowed_hosts`` entry as :meth:`NetworkPolicy.host_allowed` compares it: an IP
    address as it is (``[::1]`` as ``::1``), a name as a browser looks it up (``urls.browser_host``)."""
    entry = entry.strip()
    bare = entry.removeprefix("[").removesuffix("]")
    try:
        ipaddress.ip_network(bare, strict=False)
    except ValueError:
        pass
    else:
        return bare.lower()
    try:
        return urls.browser_host(entry).rstrip(".")
    except ValueError:
        return entry.lower().rstrip(".")  # refused when the params are read; matches no host fetched


def prepared_url(policy: NetworkPolicy, url: str) -> tuple[str | None, str | None]:
    """(the URL to fetch, None), or (None, why it is refused): ``url`` encoded as a browser sends
    it (:func:`fetchable_url`), then checked by the policy (:meth:`NetworkPolicy.url_problem`), so
    the checks see the host that is fetched (``ｌｏｃａｌｈｏｓｔ`` is ``localhost`` in IDNA)."""
    if len(url) > MAX_URL_LENGTH:  # refused unparsed
        return None, policy.url_problem(url)
    try:
        fetched = fetchable_url(url)
    except ValueError as exc:
        return None, f"{REFUSED}: the URL cannot be encoded as a browser sends it: {exc}"
    problem = policy.url_problem(fetched)
    if problem is not None and fetched != url and len(fetched) > MAX_URL_LENGTH:
        problem += " once percent-encoded"
    return (None, problem) if problem else (fetched, None)


def proxy_problem(policy: NetworkPolicy, environ: dict[str, str] | None = None) -> str | None:
    """Why the policy cannot hold with the proxies in the environment, or None. Through a proxy,
    the address dialled is the proxy's: the guard would vet the proxy and let it fetch any
    target, 169.254.169.254 included. So a proxy and the private-address check do not mix."""
    if policy.allow_private_networks:
        return None
    environ = dict(os.environ if environ is None else environ)
    found = sorted(name for name in environ
                   if name.lower() in PROXY_VARIABLES and environ[name].strip())
    if not found:
        return None
    return (f"the download step's network policy cannot check the hosts a proxy fetches, and "
            f"{', '.join(found)} is set ({environ[found[0]]}); unset {' and '.join(found)} for curate, "
            f"or set `allow_private_networks: true` in the download step's params to download through "
            f"the proxy without the private-address check")


def install(policy: NetworkPolicy, limits: fetch.FetchLimits | None = None) -> None:
    """Everything a fetching process needs: the connect-time guard, and urllib's opener with the
    deadline and the caps on bytes, pixels and decoding memory (``fetch.py``). Proxies are only
    used when the policy checks nothing (``allow_private_networks``): the guard would otherwise
    vet the proxy, not the target; the step refuses that combination before it starts."""
    install_guard(policy)
    proxies = None if policy.allow_private_networks else {}
    fetch.install_opener(limits or fetch.FetchLimits(), proxies, refusal=REFUSED)


def install_guard(policy: NetworkPolicy) -> None:
    """Make ``socket.create_connection`` (what urllib and http.client dial with) resolve the host
    itself, refuse it if any address is forbidden, and connect to a vetted address: the name is
    never resolved a second time, so a changing DNS answer cannot slip past the check. Also
    refuse ftp, where a redirect may lead (see :func:`install` for the whole setup)."""
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
    fetch.install_opener(fetch.FetchLimits(), {}, refusal=REFUSED)


def release_bodies_when_decoded() -> None:
    """Give each fetched body's bytes back to the process's budget (``max_buffered_bytes``, see
    ``fetch.py``) once img2dataset's resizer is done with it. In img2dataset (1.47) every body
    that ``read()`` returns goes to ``Resizer.__call__``, in the process's main thread: the
    download thread wraps it in a BytesIO and returns it, and the main thread hands it to the
    resizer, since curate asks for no hash check (the one path that skips the resizer). So that
    call is where a body stops waiting. A resizer that cannot be found fails the process at once:
    without it, bodies would never be given back and every fetch would end waiting."""
    from img2dataset.resizer import Resizer

    decode = Resizer.__call__
    if getattr(decode, "curate_releases_bodies", False):
        return

    def __call__(self, img_stream, *args, **kwargs):  # type: ignore[no-untyped-def]
        size = img_stream.seek(0, os.SEEK_END)  # seeking leaves the BytesIO sharing the body's bytes
        img_stream.seek(0)
        try:
            return decode(self, img_stream, *args, **kwargs)
        finally:
            fetch.body_consumed(size)

    __call__.curate_releases_bodies = True  # type: ignore[attr-defined]
    Resizer.__call__ = __call__  # type: ignore[method-assign]


def _install_from_environment() -> None:
    text = os.environ.get(POLICY_ENV)
    if text:
        limits_text = os.environ.get(fetch.LIMITS_ENV)
        limits = fetch.FetchLimits.from_json(limits_text) if limits_text else None
        install(NetworkPolicy.from_json(text), limits)
        if limits is not None and limits.max_buffered_bytes is not None:
            release_bodies_when_decoded()
        decode_as_shown()


def decode_as_shown() -> None:
    """img2dataset's resizer decodes 16-bit images to 8 bits and JPEGs upright as their EXIF
    orientation says (``pixels.py``: it stored both wrong, as ``success``)."""
    from img2dataset import resizer

    pixels.decode_as_shown(resizer)


def _die_with_parent() -> None:
    """If the curate process dies (even by SIGKILL), take img2dataset's processes down with us:
    its logger process never exits on its own. The parent's pid comes from the environment:
    read here, ``os.getppid()`` would already name init if curate was killed while this process
    started, and the orphan would download its shard to the end, racing the re-run."""
    parent = int(os.environ.get(PARENT_ENV) or os.getppid())
    own_group = os.getpgrp() == os.getpid()
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_SECONDS)
            if os.getppid() != parent:
                if own_group:
                    os.killpg(os.getpgrp(), signal.SIGKILL)
                os._exit(1)

    threading.Thread(target=watch, name="curate-download-watchdog", daemon=True).start()


def _die_with_children(error_file: Path, stats_files: list[Path]) -> None:
    """If one of img2dataset's processes dies (the kernel's out-of-memory killer sends SIGKILL),
    its multiprocessing pool starts another but the dead one's part never finishes and
    img2dataset waits forever. Watch the children instead: on a death by signal or with an
    error status while parts are unfinished, say which and exit, so the step fails within a
    second instead of hanging. (Once every part is done img2dataset terminates its pool itself.)"""
    seen: dict[int, multiprocessing.process.BaseProcess] = {}

    def watch() -> None:
        while True:
            time.sleep(CHILD_POLL_SECONDS)
            for child in multiprocessing.active_children():
                seen.setdefault(child.pid or 0, child)
            for pid, child in list(seen.items()):
                code = child.exitcode
                if code is None:
                    continue
                del seen[pid]
                if code != 0 and not all(path.exists() for path in stats_files):
                    how = (f"was killed by signal {-code} ({signal.Signals(-code).name}"
                           + ("; the kernel's out-of-memory killer sends it" if -code == signal.SIGKILL else "")
                           + ")") if code < 0 else f"exited with status {code}"
                    message = f"img2dataset's process {child.name} (pid {pid}) {how} while downloading"
                    error_file.write_text(message)
                    print(message, file=sys.stderr, flush=True)
                    for other in multiprocessing.active_children():
                        if other.pid:
                            os.kill(other.pid, signal.SIGKILL)
                    os._exit(CHILD_DIED_EXIT)

    threading.Thread(target=watch, name="curate-download-child-watch", daemon=True).start()


def main(job_path: str) -> None:
    _die_with_parent()
    with open(job_path) as handle:
        job = json.load(handle)
    parts = int(os.environ.get(PARTS_ENV, "0"))
    output = Path(job["output_folder"])
    _die_with_children(Path(job_path).with_name(CHILD_DIED_FILE),
                       [output / f"{part:05d}_stats.json" for part in range(parts)])
    _install_from_environment()
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
    _install_from_environment()

if __name__ == "__main__":
    main(sys.argv[1])
