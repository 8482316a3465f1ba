"""Which address ``ray.init(address=…)`` will connect to, and what named it, so that the probe asks
the address Ray is about to wait on, wherever Ray found it.

How Ray finds it (``ray._private.worker.init`` and ``services.get_ray_address_from_environment``):

- ``local`` starts a cluster and reads nothing from the environment; curate passes it when the spec
  names no address.
- ``auto``: the ``RAY_ADDRESS`` variable, when set and not empty, takes its place (it may itself be
  ``local``, ``auto`` or ``ray://…``). Otherwise Ray looks on this machine: the GCS address on the
  command line of the one raylet running here; with several running, the address in the cluster
  file (``ray_current_cluster`` in Ray's temporary folder, written by ``ray start`` and left behind
  by a cluster that died), or without one, any of theirs; with none running, that file. Finding
  nothing is Ray's own error, at once.
- anything else is the address itself. curate accepts only the forms it can ask before ray.init
  waits on them (:func:`form_problem`): ``auto``, ``local``, ``HOST:PORT`` (``[IPv6]:PORT``) with a
  port 1-65535 and ``ray://HOST:PORT``; the spec's address is checked at validation, and one that
  ``auto`` finds elsewhere (``RAY_ADDRESS``…) before ray.init (curate_ray.probe).

Then ``HOST:PORT`` (not ``ray://…``) is dialled as Ray rewrites it
(``services.canonicalize_bootstrap_address``): a loopback host (``127.0.0.1``, ``localhost``,
``::1``) becomes this machine's address as Ray sees it (``get_node_ip_address``: its network
address, or ``127.0.0.1`` where ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` is off, as it is on macOS
and Windows, and in a process that ran a local cluster, see curate_ray.executor), so a cluster
listening on loopback alone is not reached by ``ray.init`` at ``127.0.0.1``. ``ray://HOST:PORT``
is dialled as written: Ray's client connects to the address it is given.

Both (``auto`` without ``RAY_ADDRESS``, and the rewrite) ask Ray's own functions rather than copy
its rules. What ``auto`` found on this machine is then what the executor passes to ray.init, so the
address probed is the one ray.init dials: looking again could find another (a raylet that started
or stopped in between, or one whose arguments Linux had not yet filled in: /proc/PID/cmdline reads
empty for a moment after a program starts), and that one would be joined unasked.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass

SPEC_ADDRESS = "run.executor.params.address"
ADDRESS_VARIABLE = "RAY_ADDRESS"  # Ray's own name for it (ray_constants.RAY_ADDRESS_ENVIRONMENT_VARIABLE)
_LOCAL_CLUSTER = f"or leave {SPEC_ADDRESS} out (or set it to local) to run a local cluster for this run"
# Ray's own name (ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR): off, Ray dials a loopback host as 127.0.0.1
LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

# Addresses ray.init(address=…) joins by connecting to HOST:PORT ('auto' is first resolved to one);
# 'local' starts a cluster. Anything else (another scheme, a port out of range, spaces) curate cannot
# ask first, and Ray would wait ~821 s on it or fail with a parse error: refused (form_problem).
_ADDRESS = re.compile(r"(?:ray://)?(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]/\s]+)):(?P<port>\d{1,5})")
ACCEPTED = ("auto, local, HOST:PORT (a head's GCS address, HOST:6379; [IPv6]:PORT) or ray://HOST:PORT "
            "(Ray's client, ray://HOST:10001), with a port from 1 to 65535")


@dataclass(frozen=True)
class ToJoin:
    """The address ray.init will connect to: ``address`` as named, ``dials`` as Ray dials it (the same
    unless Ray rewrites a loopback host); ``found_in`` says where ``auto`` found it (None: the spec
    names it), ``fix`` what the user can do when it does not answer; ``found_here`` whether ``auto``
    found it by looking on this machine (not in RAY_ADDRESS), where ray.init turns Ray's token
    authentication on by itself if it finds a token (curate_ray.authentication)."""

    address: str
    dials: str
    found_in: str | None
    fix: str
    found_here: bool = False

    @property
    def where(self) -> str:
        """The address for an error: as named, with where it was found and how Ray dials it."""
        said = [f"address: auto found it in {self.found_in}"] if self.found_in else []
        if self.dials != self.address:
            said.append(f"Ray connects to it as {self.dials}")
        return f"{self.address} ({'; '.join(said)})" if said else self.address


def form_problem(address: str) -> str | None:
    """What is wrong with ``address`` as an address to join, for an error that goes on to list
    :data:`ACCEPTED`; None where it is one of them."""
    if address in ("auto", "local"):
        return None
    if not address:
        return "is empty"
    if address != address.strip():
        return "has spaces around it (remove them)"
    match = _ADDRESS.fullmatch(address)
    if match is None:
        return "is not an address curate can check before Ray waits on it"
    if not 0 < int(match["port"]) < 65536:
        return f"has port {int(match['port'])}, which is not from 1 to 65535"
    return None


def target(address: str | None) -> tuple[str, int] | None:
    """The host and port of ``address`` (``HOST:PORT``, ``[IPv6]:PORT``, ``ray://HOST:PORT``); None
    for no address, 'auto', 'local', and every form :func:`form_problem` refuses."""
    if address is None:
        return None
    match = _ADDRESS.fullmatch(address)
    if match is None or not 0 < int(match["port"]) < 65536:
        return None
    return match["ipv6"] or match["host"], int(match["port"])


def to_join(address: str) -> ToJoin:
    """What ``ray.init(address=address)`` connects to. Where ``auto`` finds no cluster on this
    machine, Ray's own ConnectionError (what ray.init would raise at once)."""
    if address != "auto":
        return _joining(address, None, f"check {SPEC_ADDRESS} (a head node's GCS address, HOST:6379, or "
                        "ray://HOST:10001) and that the cluster runs ('ray start --head' starts one)")
    named = os.environ.get(ADDRESS_VARIABLE)
    if named and named != "auto":
        return _joining(named, f"the {ADDRESS_VARIABLE} environment variable",
                        f"unset {ADDRESS_VARIABLE} (or set it to the address of a cluster that runs), "
                        f"start the cluster it names ('ray start --head'), {_LOCAL_CLUSTER}")
    return _on_this_machine()


def _joining(address: str, found_in: str | None, fix: str, found_here: bool = False) -> ToJoin:
    dials = _as_dialled(address)
    host = target(dials)
    if dials != address and host is not None and not _is_loopback(host[0]):
        fix = (f"{fix}; Ray connects to a loopback host as this machine's address, {host[0]}: where the "
               f"cluster listens on loopback only, set {LOOPBACK_SWITCH}=0 for this run (Ray then "
               "connects to 127.0.0.1), or name the address it listens on")
    return ToJoin(address, dials, found_in, fix, found_here)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name
        return False


def _as_dialled(address: str) -> str:
    """``address`` as ray.init dials it: HOST:PORT as Ray's own function rewrites it (read now: the
    loopback switch and this machine's address are Ray's state in this process); ray://HOST:PORT as
    written (Ray's client connects to the address it is given); anything else as written, for Ray."""
    if "://" in address or target(address) is None:
        return address
    from ray._private import services

    return services.canonicalize_bootstrap_address(address) or address


def _on_this_machine() -> ToJoin:
    from ray._private import services, utils

    # As ray.init does before it looks: the raylets found by an earlier look may have stopped since.
    getattr(services.find_gcs_addresses, "cache_clear", lambda: None)()
    found = services.get_ray_address_from_environment("auto", None)  # ConnectionError: nothing found
    cluster_file = utils.get_ray_address_file(None)
    if found == utils.read_ray_address(None):
        return _joining(found, f"the cluster file {cluster_file}",
                        "'ray start' wrote that file, and a cluster that stopped without 'ray stop' leaves "
                        "it behind: start the cluster again ('ray start --head'), or run 'ray stop' (which "
                        f"removes the file), or set {ADDRESS_VARIABLE} to the address of a cluster that runs, "
                        f"{_LOCAL_CLUSTER}", found_here=True)
    return _joining(found, "the command line of a raylet running on this machine (its --gcs-address)",
                    "the Ray cluster on this machine may be stuck or stopping: 'ray stop' ends it and "
                    f"'ray start --head' starts a new one; or set {ADDRESS_VARIABLE} to the address of a "
                    f"cluster that runs, {_LOCAL_CLUSTER}", found_here=True)
