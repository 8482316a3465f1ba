"""What a spec from someone else (``run.untrusted`` / ``--untrusted``) may name besides its SQL.

Its params that name a file or folder (:data:`curate.params.PLACE`, :meth:`Params.places`) must lie
inside the working directory, links resolved, whether the plugin reads them (a model whose captions
or scores reach the outputs, an eval set) or writes them (a world, an image store): an absolute
path elsewhere, ``~``, ``..`` or a link out would hand any file of the user's to whoever gets the
run back, or overwrite one. A storage URL (``s3://``, ``gs://``, ``az://``…), as a source, an
output, or a param, is read and written with the user's credentials: a stranger's spec could copy
the user's private bucket into its outputs, or the run's data into a bucket of its own. One is
allowed only under a prefix the user names on the command line (``--allow-remote PREFIX``), never
by the spec itself.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from pathlib import Path

from curate.remote import is_url, protocol
from curate.runfiles import where_outside

UNTRUSTED = "the spec is untrusted (run.untrusted / --untrusted)"
PLACES = f"{UNTRUSTED}, so the files and folders it names must lie inside the working directory"
PLACE_FIX = ("copy what it names into the working directory and give its relative path, or run the spec without "
             "--untrusted if you trust it")


def _remote(untrusted: str) -> str:
    return (f"storage URLs are read and written with your credentials, and {untrusted}: it could copy your data "
            "into its outputs, or the run's to a bucket of its own")


Problem = tuple[tuple, str, str]  # (location in the spec, message, hint)


def _normal(url: str) -> str:
    """``url`` with its scheme in lower case and no trailing '/' (S3:// and s3:// are one place)."""
    return f"{protocol(url)}://{url.split('://', 1)[1]}".rstrip("/")


def remote_allowed(url: str, allowed: Iterable[str]) -> bool:
    """Whether the storage URL ``url`` lies under one of the prefixes ``allowed`` (from
    ``--allow-remote``), whole path segments only: ``s3://b/data`` allows ``s3://b/data/x``, not
    ``s3://b/data-private``. A URL with a '.' or '..' segment is under none (a store may resolve it)."""
    if any(part in (".", "..") for part in url.split("://", 1)[1].split("/")):
        return False
    url = _normal(url)
    return any(url == prefix or url.startswith(prefix + "/") for prefix in map(_normal, allowed))


def remote_problem(url: str, allowed: Iterable[str], what: str = "spec",
                   untrusted: str = UNTRUSTED) -> tuple[str, str] | None:
    """(message, hint) when an untrusted spec (or another ``what``, said to be untrusted as
    ``untrusted`` says) may not use the storage URL ``url``; None when it may."""
    if remote_allowed(url, allowed):
        return None
    return (f"'{url}' is in object storage; {_remote(untrusted)}",
            f"if you mean this {what} to use it, allow it: --allow-remote {shlex.quote(url)} (or a prefix of it); "
            f"or run the {what} without --untrusted if you trust it")


def place_problem(raw: str, allowed: Iterable[str], base: str | Path | None = None,
                  also: Iterable[str | Path] = ()) -> tuple[str, str] | None:
    """(message, hint) when an untrusted spec may not name ``raw``, a path (relative to ``base``,
    default the working directory; inside the working directory or a folder of ``also``) or a
    storage URL (under a prefix of ``allowed``); None when it may."""
    if is_url(raw):
        return remote_problem(raw, allowed)
    where = where_outside(raw, base, also)
    return None if where is None else (f"'{raw}' is {where}; {PLACES}", PLACE_FIX)


def place_problems(places: list[tuple[str, str]], loc: tuple, allowed: Iterable[str],
                   base: str | Path | None = None, also: Iterable[str | Path] = ()) -> list[Problem]:
    """The first problem of each param among ``places`` (``(param, path or URL)``, from
    :meth:`curate.params.Params.places`; a param of nested params is dotted: ``options.path``),
    located under ``loc`` (``("steps", 2, "params")``)."""
    allowed = tuple(allowed)
    out: list[Problem] = []
    refused: set[str] = set()
    for param, raw in places:
        if param in refused:
            continue
        problem = place_problem(raw, allowed, base, also)
        if problem is not None:
            refused.add(param)
            out.append((loc + tuple(param.split(".")), *problem))
    return out
