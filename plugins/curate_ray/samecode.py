"""Whether a Ray worker runs the code this run's driver runs: curate and every plugin of the run.

A node whose environment drifted (a newer wheel, a stale venv or checkout) runs its own code under
the driver's name: the run completes, and its manifest, lineage and cache key record the driver's
versions for shards that other code wrote (later runs, local ones too, reuse them). So the driver
describes its code once per process (:func:`driver_code`): curate's version, each plugin's name and
the version of its distribution, and a digest of the ``.py`` files of each one's package, where
they are installed. Every task and actor gets that description and, before it reads or writes a
shard, compares it once per worker process with the same description made there
(:func:`check_same_code`); a worker that differs fails the run naming its host and what differs.

Measuring reads the packages' source files once per process (curate and the built-in plugins:
~250 files, ~2 MB, some tens of milliseconds); every later task in that process compares cached
values. The files are read where the process finds them, which is what it imported unless they
changed on disk after the import.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.machinery import ModuleSpec
from pathlib import Path

from curate.errors import CurateError


@dataclass(frozen=True)
class Package:
    """One part of the code a run runs, as one process finds it: ``label`` ('curate', "plugin
    'basics'"), the ``module`` it is imported as, its ``distribution`` and ``version`` (None where
    none is installed), and ``digest``, of its package's .py files (None: not found here).
    ``location`` says where, for an error; it is not compared (nodes install in different places)."""

    label: str
    module: str
    distribution: str | None
    version: str | None
    digest: str | None
    location: str | None = field(default=None, compare=False)


def driver_code(plugins: Iterable[tuple[str, str, str | None]]) -> tuple[Package, ...]:
    """curate and each plugin ``(name, module, distribution)`` as this process finds them."""
    return (_measured("curate", "curate", None),
            *(_measured(f"plugin '{name}'", module, distribution) for name, module, distribution in plugins))


def check_same_code(wanted: tuple[Package, ...]) -> None:
    """Return where this process finds the code described by ``wanted`` (the driver's) as it is
    described; raise a CurateError naming this host and what differs otherwise."""
    differences = _differences(wanted)
    if differences:
        raise CurateError(
            f"a Ray worker on {socket.gethostname()} runs other code than this run's driver: "
            + "; ".join(differences),
            hint="install the same curate and plugins, built from the same code, on every node of the "
            f"cluster (the same wheel, image or checkout; that worker runs {sys.executable}), then "
            "restart the cluster's workers ('ray stop' and 'ray start' on each node) so that they load "
            "it; that worker wrote no shard",
        )


@functools.cache
def _differences(wanted: tuple[Package, ...]) -> tuple[str, ...]:
    """Once per process for what the driver sent: a worker takes many shards. A package the driver
    has no files of (a plugin object defined in __main__) says nothing to compare. A plugin the
    worker does not have at all runs nothing there: one its steps need fails to unpickle, with Ray's
    import error; a driver-only plugin (one whose steps never run on a worker, or a shim the driver
    loads a step through) is not the worker's business."""
    here = (_measured(theirs.label, theirs.module, theirs.distribution) for theirs in wanted)
    return tuple(_difference(theirs, ours) for theirs, ours in zip(wanted, here)
                 if theirs.digest is not None and ours.digest is not None and theirs != ours)


def _difference(driver: Package, worker: Package) -> str:
    where = f"(the worker's is in {worker.location})"
    if worker.version != driver.version:
        return f"{worker.label} {worker.version or 'of no version'}, the driver's {driver.version} {where}"
    return f"{worker.label}: same version ({worker.version or 'none'}), different code {where}"


@functools.cache
def _measured(label: str, module: str, distribution: str | None) -> Package:
    top = module.partition(".")[0]  # a plugin's package: code it imports from its own modules too
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return Package(label, module, distribution, None, None)
    files = _files(spec)
    version = _version(module, distribution)
    locations = spec.submodule_search_locations
    location = str(Path(locations[0]) if locations else spec.origin)
    return Package(label, module, distribution, version, digest(files), location)


def _version(module: str, distribution: str | None) -> str | None:
    if module == "curate":
        from curate import __version__

        return __version__
    if distribution is None:
        return None
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _files(spec: ModuleSpec) -> list[tuple[str, Path]]:
    """``(name inside the package, path)`` of each of its .py files, the same names on every node."""
    if spec.submodule_search_locations:
        return [(f"{index}/{path.relative_to(root).as_posix()}", path)
                for index, root in enumerate(Path(location) for location in spec.submodule_search_locations)
                for path in root.rglob("*.py")]
    return [(Path(spec.origin).name, Path(spec.origin))] if spec.origin else []


def digest(files: list[tuple[str, Path]]) -> str:
    """A digest of the files' names and contents, independent of where the package is installed."""
    hashed = hashlib.sha256()
    for name, path in sorted(files):
        try:
            content = path.read_bytes()
        except OSError as exc:  # removed or unreadable meanwhile: differs from a readable one
            content = f"unreadable: {type(exc).__name__}".encode()
        hashed.update(f"{name}\0{len(content)}\0".encode())
        hashed.update(content)
    return hashed.hexdigest()
