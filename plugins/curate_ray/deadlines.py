"""How long the Ray executor waits for a cluster that does not answer, or has no CPUs to run on.

Each is a number of seconds read from the environment when a run needs it, so a run against a slow
cluster can be given longer without a spec change (where shards run never changes what they
contain, so none of this belongs in a spec's fingerprint).
"""

from __future__ import annotations

from curate.envnumbers import positive_number

# Ray itself waits ~821 s for a named address that never answers (20 tries of its 30 s GCS call
# and two 5 s connection waits), far longer than a GCS takes to come up (Ray's own default wait
# for a head that is starting is 30 s).
CONNECT_DEADLINE_ENV, CONNECT_DEADLINE = "CURATE_RAY_CONNECT_DEADLINE", 60.0
# Shards of a cluster without CPUs wait for its autoscaler to add some: a few minutes on the clouds
# Ray's autoscaler knows, so ten minutes before the run says nothing can start.
NO_CPU_DEADLINE_ENV, NO_CPU_DEADLINE = "CURATE_RAY_NO_CPU_DEADLINE", 600.0
MOST = 86400.0


def seconds(variable: str, default: float) -> float:
    """The number of seconds ``variable`` holds, or ``default`` when it is not set."""
    return positive_number(variable, default, MOST)
