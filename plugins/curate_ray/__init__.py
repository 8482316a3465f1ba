"""Built-in plugin: ``executor: ray`` runs shard-scope steps on a Ray cluster.

Importing this module never imports ray (``curate --help`` loads every plugin); the executor
imports it when a run opens its session.
"""

from __future__ import annotations

from curate import hookimpl

__version__ = "0.1.0"


@hookimpl
def curate_register_executors():
    from curate_ray.executor import RayExecutor

    return [RayExecutor]
