"""Listing a bucket a page at a time: what a source's ``s3://`` path names, kept small and bounded.

s3fs's ``find`` and ``glob`` collect a whole listing before returning it, as a dict of every
object's full description (~1.3 KB an object measured: 134 MiB more peak memory for 100,000
keys), and follow the endpoint's continuation tokens for as long as it sends them. Here each
page of ListObjectsV2 is read, filtered (by the glob's pattern, or by the source's extensions)
and dropped, and of each object only its URL and a :class:`curate.remote.Listed` (size, ETag)
are kept. A glob is listed as fsspec lists it: under the fixed part before its first wildcard,
one level at a time down to its depth (delimited by ``/``), or all of it under ``**``.

Every page counts its keys and sub-prefixes against ``CURATE_S3_MAX_OBJECTS`` (a million by
default; a page counts as at least one, and one that says more follows as at least
``TRUNCATED_PAGE_COST``): past it, or on a continuation token the endpoint repeats, the listing
stops with an error saying how to list less. Each page has its deadline (``curate.remote.call``).
Other fsspec backends are listed by fsspec, then bounded the same way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from typing import Any

from curate import remote
from curate.errors import StorageError
from curate.remote import Listed

MAX_OBJECTS_ENV = "CURATE_S3_MAX_OBJECTS"
MAX_OBJECTS = 1_000_000  # ~350 MB of kept listing at the worst (every object accepted)
# What a page that says more follows costs at least: S3 (and MinIO, Ceph, R2) fill such a page
# with 1000 keys, so this never counts against a real listing, while an endpoint that sends
# nearly empty pages forever is stopped after MAX_OBJECTS / 100 requests, not MAX_OBJECTS.
TRUNCATED_PAGE_COST = 100
WILDCARDS = "*?["


def max_objects() -> int:
    text = os.environ.get(MAX_OBJECTS_ENV)
    if text is None:
        return MAX_OBJECTS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise StorageError(f"{MAX_OBJECTS_ENV}={text!r} is not a whole number of objects of at least 1",
                           f"set it to the most objects one listing may hold, or unset it for {MAX_OBJECTS:,}")
    return value


class Budget:
    """The objects one listing has seen so far, against :func:`max_objects`."""

    def __init__(self, url: str) -> None:
        self.url, self.most, self.seen, self.pages = url, max_objects(), 0, 0

    def spend(self, entries: int, truncated: bool) -> None:
        self.pages += 1
        self.seen += max(TRUNCATED_PAGE_COST if truncated else 1, entries)
        if self.seen > self.most:
            raise StorageError(
                f"cannot list {self.url}: the listing went past {self.most:,} objects ({self.pages:,} "
                f"page{'s' if self.pages > 1 else ''}) "
                f"and had not ended ({MAX_OBJECTS_ENV})",
                "list less at once: point the path at a narrower prefix, or at a glob whose part before the "
                f"first wildcard is longer (only what is under that part is listed); or raise {MAX_OBJECTS_ENV} "
                "if the prefix does hold that many objects (each kept costs ~350 bytes of memory). An endpoint "
                "whose listing never ends stops here too")


def pages_of(fs: Any) -> bool:
    """Whether ``fs`` lets curate read its listings a page at a time (s3fs: through its client)."""
    return callable(getattr(fs, "_call_s3", None))


def pages(fs: Any, url: str, bucket: str, prefix: str, delimiter: str, budget: Budget,
          doing: str = "list", max_keys: int | None = None) -> Iterator[dict[str, Any]]:
    """The pages of ListObjectsV2 for ``prefix``, one request at a time, each within its deadline."""
    request = {"Bucket": bucket, "Prefix": prefix, "Delimiter": delimiter}
    if max_keys is not None:
        request["MaxKeys"] = max_keys
    while True:
        page = remote.call(url, doing, fs, "call_s3", "list_objects_v2", **request)
        budget.spend(len(page.get("Contents") or ()) + len(page.get("CommonPrefixes") or ()),
                     bool(page.get("IsTruncated")))
        yield page
        if not page.get("IsTruncated") or max_keys is not None:
            return
        token = page.get("NextContinuationToken")
        if not token or token == request.get("ContinuationToken"):
            said = "sent no continuation token" if not token else "sent back the continuation token it was given"
            raise StorageError(f"cannot {doing} {url}: the storage endpoint said the listing goes on after page "
                               f"{budget.pages:,} but {said}, so it would never end",
                               "the endpoint does not answer as S3 does: check AWS_ENDPOINT_URL")
        request["ContinuationToken"] = token


def keys(fs: Any, url: str, bucket: str, prefix: str, depth: int | None, budget: Budget) -> Iterator[dict[str, Any]]:
    """The objects (ListObjectsV2's ``Contents`` entries) under ``prefix``: all of them when
    ``depth`` is None, else those within ``depth`` levels, listed level by level with the
    delimiter so that deeper objects are never listed (as fsspec's walk does)."""
    if depth is None:
        for page in pages(fs, url, bucket, prefix, "", budget):
            yield from _named(page.get("Contents"), "Key", prefix)
        return
    levels = [(prefix, 1)]
    while levels:
        here, level = levels.pop()
        for page in pages(fs, url, bucket, here, "/", budget):
            yield from _named(page.get("Contents"), "Key", here)
            if level < depth:
                levels.extend((sub["Prefix"], level + 1) for sub in _named(page.get("CommonPrefixes"), "Prefix", here))


def _named(entries: Any, field: str, prefix: str) -> Iterator[dict[str, Any]]:
    """The entries whose ``field`` (a key, a sub-prefix) is under ``prefix``, as S3 sends only
    those; an endpoint that sends others, or none, is not asked for them."""
    for entry in entries or ():
        name = entry.get(field) if isinstance(entry, dict) else None
        if isinstance(name, str) and name.startswith(prefix):
            yield entry


def list_files(url: str, accepts: Callable[[str], bool]) -> list[tuple[str, Listed]]:
    """``(url, Listed)`` of the objects ``url`` names, sorted by URL: a glob's matches, every
    accepted object under a prefix, or one object."""
    fs = remote.filesystem(url)
    scheme, path = remote.protocol(url), remote.strip(url)
    if not pages_of(fs):
        return _collected(fs, url, accepts)
    bucket, _, key = path.partition("/")
    budget = Budget(url)
    if any(ch in bucket for ch in WILDCARDS):
        raise StorageError(f"cannot list {url}: a wildcard in the bucket's name", "name one bucket; wildcards "
                           "may follow it (s3://bucket/data/*.parquet)")
    found: list[tuple[str, Listed]] = []
    if any(ch in key for ch in WILDCARDS):
        stem_end = min(key.find(ch) if ch in key else len(key) for ch in WILDCARDS)
        root = key[: key.rfind("/", 0, stem_end) + 1]  # up to the last "/" before the first wildcard
        depth = None if "**" in key else key[len(root):].count("/") + 1
        pattern = _pattern(url, path)
        for entry in keys(fs, url, bucket, key[:stem_end], depth, budget):
            name = f"{bucket}/{entry['Key']}"
            if not name.endswith("/") and pattern.match(name):
                found.append((f"{scheme}://{name}", Listed.of(entry)))
    else:
        under = f"{key}/" if key else ""
        listed_any = False
        for entry in keys(fs, url, bucket, under, None, budget):
            listed_any = True
            name = f"{bucket}/{entry['Key']}"
            if not name.endswith("/") and accepts(name):  # a key ending in "/" is a folder's marker, no file
                found.append((f"{scheme}://{name}", Listed.of(entry)))
        if not listed_any and key:  # no prefix: one object, or nothing
            found.append((f"{scheme}://{path}", Listed.of(remote.call(url, "list", fs, "info", path))))
    return _sorted(found)


def first_names(url: str, count: int, doing: str) -> list[str]:
    """Up to ``count`` objects under ``url`` (``bucket/key`` names): one request on S3. Fails as
    the listing would when the bucket is missing or may not be listed."""
    fs = remote.filesystem(url)
    path = remote.strip(url)
    if not pages_of(fs):
        return remote.call(url, doing, fs, "find", path)[:count] if remote.call(url, doing, fs, "isdir", path) else []
    bucket, _, key = path.partition("/")
    under = f"{key}/" if key else ""
    page = next(pages(fs, url, bucket, under, "", Budget(url), doing, max_keys=count))
    return [f"{bucket}/{entry['Key']}" for entry in _named(page.get("Contents"), "Key", under)][:count]


def objects_under(url: str, wanted: Callable[[str], bool], doing: str = "list") -> dict[str, Listed]:
    """The objects under the prefix ``url`` whose name below it (``a/b.tar`` for ``url/a/b.tar``)
    is ``wanted``, and what is kept of each (size, ETag): a page at a time on S3, bounded as any
    listing, and only the wanted ones kept. Keys ending in ``/`` (folder markers) are no objects."""
    fs = remote.filesystem(url)
    path = remote.strip(url)
    budget = Budget(url)
    found: dict[str, Listed] = {}
    if not pages_of(fs):
        def collect() -> dict[str, Any]:
            return fs.find(path, detail=True) if fs.isdir(path) else {}

        entries = remote.guarded(url, doing, collect)
        budget.spend(len(entries), False)
        for name, entry in entries.items():
            relative = name[len(path) + 1:] if name.startswith(path + "/") else ""
            if relative and not relative.endswith("/") and entry.get("type", "file") == "file" and wanted(relative):
                found[relative] = Listed.of(entry)
        return found
    bucket, _, key = path.partition("/")
    under = f"{key}/" if key else ""
    for entry in keys(fs, url, bucket, under, None, budget):
        relative = entry["Key"][len(under):]
        if relative and not relative.endswith("/") and wanted(relative):
            found[relative] = Listed.of(entry)
    return found


def _pattern(url: str, path: str) -> re.Pattern[str]:
    from fsspec.utils import glob_translate

    try:
        return re.compile(glob_translate(path))
    except (ValueError, re.error) as exc:
        raise StorageError(f"cannot list {url}: the glob is not one curate can match ({exc})",
                           "use * ? [..] within a name and ** only as a whole level (data/**/*.parquet)") from None


def _sorted(found: list[tuple[str, Listed]]) -> list[tuple[str, Listed]]:
    """Sorted by URL; of a key listed twice (only an endpoint that is not S3 does so), the last,
    as a dict keyed by name kept it."""
    found.sort(key=lambda item: item[0])
    return [item for index, item in enumerate(found) if index + 1 == len(found) or found[index + 1][0] != item[0]]


def _collected(fs: Any, url: str, accepts: Callable[[str], bool]) -> list[tuple[str, Listed]]:
    """Another backend's listing, collected by fsspec (its own pages are not ours to read), then
    bounded and kept as :class:`Listed`."""
    scheme, path = remote.protocol(url), remote.strip(url)

    def listing() -> list[tuple[str, dict[str, Any]]]:
        if any(ch in path for ch in WILDCARDS):
            found = fs.glob(path, detail=True)
            return [(name, entry) for name, entry in found.items() if entry.get("type") == "file"]
        if fs.isdir(path):
            return [(name, entry) for name, entry in fs.find(path, detail=True).items() if accepts(name)]
        return [(path, fs.info(path))]

    items = remote.guarded(url, "list", listing)
    Budget(url).spend(len(items), False)
    return _sorted([(f"{scheme}://{name}", Listed.of(entry)) for name, entry in items])
