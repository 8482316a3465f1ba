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
- anything else is the address itself.

For ``auto`` without ``RAY_ADDRESS`` this asks Ray's own function rather than copying its rules, so
the address probed is the one ray.init finds a moment later. A loopback host is asked as written,
as for a named address (Ray itself may connect to this machine's network address instead).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

SPEC_ADDRESS = "run.executor.params.address"
ADDRESS_VARIABLE = "RAY_ADDRESS"  # Ray's own name for it (ray_constants.RAY_ADDRESS_ENVIRONMENT_VARIABLE)
_LOCAL_CLUSTER = f"or leave {SPEC_ADDRESS} out (or set it to local) to run a local cluster for this run"


@dataclass(frozen=True)
class ToJoin:
    """The address ray.init will connect to; ``found_in`` says where ``auto`` found it (None: the spec
    names it), ``fix`` what the user can do when it does not answer."""

    address: str
    found_in: str | None
    fix: str


def to_join(address: str) -> ToJoin | None:
    """What ``ray.init(address=address)`` connects to; None where Ray finds no cluster on this
    machine for ``auto`` (ray.init then says so at once)."""
    if address != "auto":
        return ToJoin(address, None, f"check {SPEC_ADDRESS} (a head node's GCS address, HOST:6379, or "
                      "ray://HOST:10001) and that the cluster runs ('ray start --head' starts one)")
    named = os.environ.get(ADDRESS_VARIABLE)
    if named and named != "auto":
        return ToJoin(named, f"the {ADDRESS_VARIABLE} environment variable",
                      f"unset {ADDRESS_VARIABLE} (or set it to the address of a cluster that runs), "
                      f"start the cluster it names ('ray start --head'), {_LOCAL_CLUSTER}")
    return _on_this_machine()


def _on_this_machine() -> ToJoin | None:
    from ray._private import services, utils

    # As ray.init does before it looks: the raylets found by an earlier look may have stopped since.
    getattr(services.find_gcs_addresses, "cache_clear", lambda: None)()
    try:
        found = services.get_ray_address_from_environment("auto", None)
    except ConnectionError:  # no cluster file, no raylet running
        return None
    cluster_file = utils.get_ray_address_file(None)
    if found == utils.read_ray_address(None):
        return ToJoin(found, f"the cluster file {cluster_file}",
                      "'ray start' wrote that file, and a cluster that stopped without 'ray stop' leaves "
                      "it behind: start the cluster again ('ray start --head'), or run 'ray stop' (which "
                      f"removes the file), or set {ADDRESS_VARIABLE} to the address of a cluster that runs, "
                      f"{_LOCAL_CLUSTER}")
    return ToJoin(found, "the command line of a raylet running on this machine (its --gcs-address)",
                  "the Ray cluster on this machine may be stuck or stopping: 'ray stop' ends it and "
                  f"'ray start --head' starts a new one; or set {ADDRESS_VARIABLE} to the address of a "
                  f"cluster that runs, {_LOCAL_CLUSTER}")
