"""How long the Ray executor waits for a cluster that does not answer (at the start of a run, or
during it), or has no CPUs to run on.

Each is a number of seconds read from the environment when a run needs it, so a run against a slow
cluster can be given longer without a spec change (where shards run never changes what they
contain, so none of this belongs in a spec's fingerprint).
"""

from __future__ import annotations

from curate.envnumbers import positive_number

# Ray itself waits ~821 s for a named address that never answers (20 tries of its 30 s GCS call
# and two 5 s connection waits), far longer than a GCS takes to come up (Ray's own default wait
# for a head that is starting is 30 s). Refused connections take all of it only where the variable
# is set or a head is starting on this machine for that port; else a few seconds (curate_ray.probe).
CONNECT_DEADLINE_ENV, CONNECT_DEADLINE = "CURATE_RAY_CONNECT_DEADLINE", 60.0
# Shards of a cluster without CPUs wait for its autoscaler to add some: a few minutes on the clouds
# Ray's autoscaler knows, so ten minutes before the run says nothing can start.
NO_CPU_DEADLINE_ENV, NO_CPU_DEADLINE = "CURATE_RAY_NO_CPU_DEADLINE", 600.0
# A cluster that stops answering during a run (its head's processes ended, its machine lost): how
# long its GCS, or the raylet of the driver's node, may stay silent before the run stops. Ray's own
# limit is 60 s (RAY_gcs_rpc_server_reconnect_timeout_s), after which it ends the driver's process
# with no word on what was kept (curate_ray.watch); a GCS restarted under fault tolerance is back
# within it, so a longer value helps only where that limit is raised too.
LOST_DEADLINE_ENV, LOST_DEADLINE = "CURATE_RAY_LOST_DEADLINE", 10.0
MOST = 86400.0


def seconds(variable: str, default: float) -> float:
    """The number of seconds ``variable`` holds, or ``default`` when it is not set."""
    return positive_number(variable, default, MOST)
