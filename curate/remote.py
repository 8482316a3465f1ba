"""Object storage: sources, outputs and the image store at ``s3://`` (or any fsspec URL).

fsspec and its backends (s3fs, boto) are imported on first use, never by ``import curate``.
Credentials and the endpoint come from the backend's usual places: for S3, the
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` / ``AWS_DEFAULT_REGION``
/ ``AWS_ENDPOINT_URL`` variables, ``~/.aws`` profiles (``AWS_PROFILE``) or an instance role.

Writes are whole objects: a file is uploaded (multipart above ``CURATE_UPLOAD_PART_SIZE``
bytes, default 16 MiB, S3's minimum being 5 MiB) and appears at once, complete, or not at all.
An output is published by :mod:`curate.publish`: only the objects whose bytes changed are
uploaded, a folder (an export) file by file between two writes of its listing
(``_CURATE_EXPORT.json``): first naming old and new files with ``complete: false``, last as
written; a prefix holding other objects and no listing is refused, as a local folder of someone
else's files is.

Reads of whole objects (:func:`download`) copy the version the listing named, or fail: an
object rewritten after it was listed, or while it is read, is an error, and no more than the
listed size is written.

Every request has a deadline in all, retries included (``CURATE_S3_CALL_DEADLINE`` seconds, 300 by
default, plus one second per ``CURATE_S3_MIN_BYTES_PER_SECOND`` bytes it moves, 1 MiB by
default): botocore's timeouts bound each wait to send or read the next bytes, so an endpoint that
answered, or read an upload, a byte every few seconds held a call forever. An upload's requests
(its one PUT, or each part of a multipart upload and the requests that begin and complete it) have
each their own (:mod:`curate.upload`); a multipart upload that fails is aborted. A listing is read
page by page (:mod:`curate.listing`) and stops past ``CURATE_S3_MAX_OBJECTS`` objects.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from curate.envnumbers import positive_number
from curate.errors import MissingDependencyError, StorageError

URL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
PART_SIZE_ENV = "CURATE_UPLOAD_PART_SIZE"
DEFAULT_PART_SIZE = 16 * 2**20
MIN_PART_SIZE = 5 * 2**20  # S3's smallest part (all but the last)
BACKENDS = {"s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3"), "gs": ("gcsfs", None), "gcs": ("gcsfs", None),
            "az": ("adlfs", None), "abfs": ("adlfs", None)}
# What decides who we are and where we connect: a filesystem is reused while these stay the same.
ENV_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION",
            "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "CURATE_S3_CONNECT_TIMEOUT",
            "CURATE_S3_READ_TIMEOUT")
# How long an S3 endpoint may take to accept a connection, and to send the next bytes of an answer
# (seconds: s3fs's own defaults; the variables override them), and how often one request is tried:
# botocore's 5 attempts under s3fs's own 5 tries made 25 connections to an endpoint that never
# answered (measured with 1 s timeouts: 30 connections and 109 s for `curate validate`; now 9 and
# 14 s, so ~2 min at the default timeouts instead of ~8).
S3_CONNECT_TIMEOUT, S3_READ_TIMEOUT, S3_ATTEMPTS, S3FS_TRIES = 5.0, 15.0, 2, 3
# The most one request may take in all, retries included: more than the slowest failing call the
# timeouts above allow (6 tries of 5 s + 15 s, and s3fs's back-off: about 2 min), and one second
# more per MIN_RATE bytes it moves (a 1 GiB object: 300 s + 1024 s).
DEADLINE_ENV, MIN_RATE_ENV = "CURATE_S3_CALL_DEADLINE", "CURATE_S3_MIN_BYTES_PER_SECOND"
CALL_DEADLINE, MIN_RATE = 300.0, float(2**20)
T = TypeVar("T")

_lock = threading.Lock()
_filesystems: dict[tuple, Any] = {}


def is_url(path: str | os.PathLike | None) -> bool:
    """Whether ``path`` names object storage (``scheme://…``) rather than a local path."""
    return isinstance(path, str) and bool(URL_PATTERN.match(path)) and not path.startswith("file://")


def protocol(url: str) -> str:
    return url.split("://", 1)[0].lower()


def filesystem(url: str) -> Any:
    """The fsspec filesystem for ``url``'s scheme (one per scheme and credentials)."""
    scheme = protocol(url)
    module, extra = BACKENDS.get(scheme, (None, None))
    key = (scheme, tuple(os.environ.get(k) for k in ENV_KEYS))
    with _lock:
        fs = _filesystems.get(key)
        if fs is not None:
            return fs
        try:
            import fsspec
        except ImportError:
            raise MissingDependencyError(f"the URL {url}", ["fsspec"], "s3") from None
        options: dict[str, Any] = {"skip_instance_cache": True}
        if scheme in ("s3", "s3a"):
            options["use_listings_cache"] = False  # another run may have written since
            options["config_kwargs"] = {
                "connect_timeout": _seconds("CURATE_S3_CONNECT_TIMEOUT", S3_CONNECT_TIMEOUT),
                "read_timeout": _seconds("CURATE_S3_READ_TIMEOUT", S3_READ_TIMEOUT),
                "retries": {"max_attempts": S3_ATTEMPTS, "mode": "standard"},
            }
        try:
            fs = fsspec.filesystem(scheme, **options)
        except ImportError:
            raise MissingDependencyError(f"the URL {url}", [module or scheme], extra) from None
        except ValueError as exc:
            raise StorageError(f"cannot open {url}: {exc}", "use s3://bucket/key, or another fsspec URL") from None
        if scheme in ("s3", "s3a"):
            fs.retries = S3FS_TRIES
        _filesystems[key] = fs
        return fs


def _seconds(variable: str, default: float, most: float = 3600, unit: str = "seconds") -> float:
    return positive_number(variable, default, most, unit, error=StorageError)


def deadline(moved: int = 0, requests: int = 1) -> float:
    """Seconds that ``requests`` requests moving ``moved`` bytes may take in all."""
    return (requests * _seconds(DEADLINE_ENV, CALL_DEADLINE, most=86400)
            + max(0, moved) / _seconds(MIN_RATE_ENV, MIN_RATE, most=1e12, unit="bytes per second"))


class DeadlinePassed(Exception):
    """A request to object storage that went on past its deadline (see :func:`deadline`).
    Not a TimeoutError: fsspec turns those into a bare FSTimeoutError, and botocore's own
    timeouts are errors of another kind, named as such."""

    def __init__(self, seconds: float, moved: int) -> None:
        super().__init__(seconds, moved)
        self.seconds, self.moved = seconds, moved


async def _within(seconds: float, moved: int, make: Callable[[], Any]) -> Any:
    """``await make()``, cancelled after ``seconds``. The coroutine is made here, inside the
    loop, so one never started leaves no 'never awaited' warning behind."""
    import asyncio

    scope = asyncio.timeout(seconds)
    try:
        async with scope:
            return await make()
    except TimeoutError:
        if scope.expired():
            raise DeadlinePassed(seconds, moved) from None
        raise


def call(url: str, doing: str, fs: Any, method: str, *args: Any, moved: int = 0, requests: int = 1,
         **kwargs: Any) -> Any:
    """``fs.<method>(*args, **kwargs)`` as :func:`guarded` runs it, and, on an async filesystem
    (s3fs, gcsfs, adlfs), cancelled once it has taken ``deadline(moved, requests)`` seconds."""
    if not getattr(fs, "async_impl", False):
        return guarded(url, doing, lambda: getattr(fs, method)(*args, **kwargs))
    seconds = deadline(moved, requests)
    coroutine = getattr(fs, f"_{method}")
    return guarded(url, doing, lambda: _sync(fs, seconds, moved, _within, seconds, moved,
                                            lambda: coroutine(*args, **kwargs)))


def each_within(fs: Any, make: list[Callable[[], Any]], seconds: list[float], moved: list[int],
                concurrency: int) -> list[Any]:
    """Each ``make[i]()`` awaited within ``seconds[i]``, ``concurrency`` at a time, on ``fs``'s
    loop: its result, or the exception it raised (:class:`DeadlinePassed` past its deadline)."""
    import asyncio

    async def all_of() -> list[Any]:
        gate = asyncio.Semaphore(max(1, concurrency))

        async def one(index: int) -> Any:
            async with gate:
                try:
                    return await _within(seconds[index], moved[index], make[index])
                except Exception as exc:  # returned, as fsspec's on_error="return" does
                    return exc

        return await asyncio.gather(*(one(index) for index in range(len(make))))

    # every request is bounded; this bounds the wait should a cancelled one not come back
    return _sync(fs, sum(seconds), sum(moved), all_of)


def _sync(fs: Any, seconds: float, moved: int, function: Callable[..., Any], *args: Any) -> Any:
    from fsspec.asyn import sync
    from fsspec.exceptions import FSTimeoutError

    try:
        return sync(fs.loop, function, *args, timeout=seconds + 10)
    except FSTimeoutError:
        raise DeadlinePassed(seconds, moved) from None


def strip(url: str) -> str:
    """``s3://bucket/key`` → ``bucket/key``: the form fsspec's methods take."""
    return url.split("://", 1)[1].rstrip("/")


def join(url: str, *names: str) -> str:
    return "/".join([url.rstrip("/"), *(n.strip("/") for n in names)])


def error(exc: BaseException, url: str, doing: str) -> StorageError:
    """A backend's exception as a StorageError saying what failed where, and what to change."""
    bucket = strip(url).split("/", 1)[0]
    text = f"{type(exc).__name__}: {exc}".strip()
    lowered = text.lower()
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    where = f" (endpoint {endpoint})" if endpoint else ""
    if isinstance(exc, DeadlinePassed):
        rate = _seconds(MIN_RATE_ENV, MIN_RATE, most=1e12, unit="bytes per second")
        parts = f"{DEADLINE_ENV}={_seconds(DEADLINE_ENV, CALL_DEADLINE, most=86400):g} s a request" + (
            f", and {exc.moved:,} bytes at {MIN_RATE_ENV}={rate:,.0f}" if exc.moved else "")
        return StorageError(f"cannot {doing} {url}: the storage endpoint did not finish within "
                            f"{round(exc.seconds, 1):g} s, "
                            f"retries included: {parts}{where}",
                            f"an endpoint this slow is overloaded, or is not answering as S3 does: check "
                            f"AWS_ENDPOINT_URL. Over a slow link, raise {DEADLINE_ENV} (seconds) or lower "
                            f"{MIN_RATE_ENV}")
    if "nosuchbucket" in lowered or "bucket does not exist" in lowered or (
            isinstance(exc, FileNotFoundError) and "bucket" in lowered):
        return StorageError(f"cannot {doing} {url}: bucket '{bucket}' does not exist{where}",
                            f"create the bucket, or fix the bucket name in the spec ({text})")
    if isinstance(exc, PermissionError) or any(w in lowered for w in ("accessdenied", "access denied", "forbidden",
                                                                        "invalidaccesskeyid", "signaturedoesnotmatch")):
        return StorageError(f"cannot {doing} {url}: permission denied{where} ({text})",
                            "check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE) and "
                            f"that they may read and write bucket '{bucket}'")
    if isinstance(exc, FileNotFoundError):
        return StorageError(f"cannot {doing} {url}: no such object or prefix{where}", "check the path in the spec")
    if any(w in lowered for w in ("could not connect", "connect timeout", "connection refused", "endpoint",
                                  "name or service not known", "cannot connect")):
        return StorageError(f"cannot {doing} {url}: the storage endpoint cannot be reached{where} ({text})",
                            "check AWS_ENDPOINT_URL (or the network); `aws s3 ls` with the same environment "
                            "tells whether the endpoint answers")
    return StorageError(f"cannot {doing} {url}: {text}{where}",
                        "check the URL, the credentials and the endpoint (AWS_ENDPOINT_URL)")


def guarded(url: str, doing: str, call: Callable[[], T]) -> T:
    """Run ``call``, turning the backend's exceptions into a StorageError about ``url``."""
    try:
        return call()
    except (MissingDependencyError, StorageError):
        raise
    except Exception as exc:  # botocore, aiohttp and fsspec raise many kinds: all mean the same here
        raise error(exc, url, doing) from None


# -- reading -------------------------------------------------------------------------------------
def info(url: str) -> dict[str, Any]:
    fs = filesystem(url)
    return call(url, "read", fs, "info", strip(url))


@dataclass(frozen=True, slots=True)
class Listed:
    """What curate keeps of a listed object: its size and what tells its versions apart
    (:func:`version_of`, :func:`_same`). Three fields (~170 bytes with the ETag's text) instead
    of the backend's dict of a dozen (~1 KB): a listing of a million objects is held whole."""

    size: int | None
    etag: str | None  # without its quotes; None where the backend gave none
    modified: str | None = None  # the time the backend gave, kept only where there is no ETag

    @classmethod
    def of(cls, entry: Mapping[str, Any]) -> Listed:
        """From a backend's description: a page of ListObjectsV2 (``Size``) or fsspec's (``size``)."""
        tag = entry.get("ETag") or entry.get("etag")
        stamp = None if tag else entry.get("mtime") or entry.get("LastModified")
        return cls(entry["size"] if "size" in entry else entry.get("Size"),
                   str(tag).strip('"') if tag else None, str(stamp).strip('"') if stamp else None)


def list_files(url: str, accepts: Callable[[str], bool]) -> list[tuple[str, Listed]]:
    """``(url, what is kept of it)`` of the objects ``url`` names, sorted: a glob (``*``, ``?``,
    ``[``), every accepted object under a prefix, or one object. Read a page at a time and
    bounded (:mod:`curate.listing`)."""
    from curate import listing

    return listing.list_files(url, accepts)


def version_of(entry: Listed) -> str:
    """What changes when an object is rewritten: its ETag (or mtime) and size."""
    tag = entry.etag if entry.etag is not None else entry.modified or ""
    return f"{tag}:{entry.size}"


def _same(listed: Listed, now: Listed) -> bool:
    """Whether two descriptions of an object name the same version: its size and ETag, where
    both have them (a listing's LastModified is finer than a HEAD's, so times are not compared)."""
    sizes, tags = (listed.size, now.size), (listed.etag, now.etag)
    return (None in sizes or sizes[0] == sizes[1]) and (None in tags or tags[0] == tags[1])


def _changed(url: str, listed: Listed, detail: str) -> StorageError:
    return StorageError(f"cannot download {url}: the object changed while it was read ({detail}; listed as "
                        f"{listed.size} bytes, version {version_of(listed)!r}), so the copy would mix "
                        "versions or not be the one the run's fingerprints name",
                        "run again: the next listing names the new object. If it keeps changing, something "
                        "is rewriting it while curate reads it: wait for the writer to finish")


def download(url: str, entry: Listed, cache_dir: Path) -> Path:
    """A local copy of object ``url`` under ``cache_dir``, kept while the object is unchanged.

    The copy is of the version ``entry`` (the listing) describes, or there is none: the cache is
    keyed by that version, and the run's fingerprints name it. An object replaced after it was
    listed (or during the read: the backend resumes a broken read with a range request, which
    would splice two versions) is an error, found by the bytes read and by asking for the
    object's size and ETag again once it is read; no more than the listed size is written, so
    an object that grows, or a body that never ends, stops there, and a body that trickles
    stops at the deadline for its listed size."""
    digest = hashlib.sha256(f"{url}\0{version_of(entry)}".encode()).hexdigest()[:20]
    local = cache_dir / digest / url.rsplit("/", 1)[-1]
    if local.is_file() and local.stat().st_size == entry.size:
        return local
    local.parent.mkdir(parents=True, exist_ok=True)
    partial = local.with_name(f".{local.name}.{os.getpid()}.tmp")
    fs = filesystem(url)
    try:
        call(url, "download", fs, "get_file", strip(url), str(partial), callback=_size_guard(url, entry),
             moved=entry.size or 0)
        got = partial.stat().st_size
        if entry.size is not None and got != entry.size:
            raise _changed(url, entry, f"{got} bytes were read")
        now = Listed.of(info(url))
        if not _same(entry, now):
            raise _changed(url, entry, f"it is now {now.size} bytes, version {version_of(now)!r}")
        os.replace(partial, local)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return local


def _size_guard(url: str, entry: Listed) -> Any:
    """An fsspec callback (called with each block written) that stops a read going past the
    object's listed size: the object grew, or the endpoint sends more than it has."""
    from fsspec.callbacks import Callback

    limit = entry.size

    class SizeGuard(Callback):
        def relative_update(self, inc: int = 1) -> None:
            super().relative_update(inc)
            if limit is not None and self.value > limit:
                raise _changed(url, entry, f"more than {limit} bytes arrived")

    return SizeGuard()


def cat(url: str, most: int) -> bytes:
    """Object ``url``'s bytes, refused when it is longer than ``most`` (only ``most + 1`` are read)."""
    data = read_ranges([url], [0], [most + 1], 1)[0]
    if len(data) > most:
        raise StorageError(f"cannot read {url}: it is longer than {most:,} bytes, more than curate reads of it",
                           "check the object: it is not the file curate wrote there")
    return data


def fetch_ranges(urls: list[str], starts: list[int], ends: list[int], concurrency: int) -> list[bytes | Exception]:
    """Bytes ``starts[i]:ends[i]`` of each object, fetched ``concurrency`` at a time, each within
    its deadline: the bytes, or the exception its request ended with (a missing object's
    FileNotFoundError, :class:`DeadlinePassed`), for the caller to judge."""
    if not urls:
        return []
    fs = filesystem(urls[0])
    paths = [strip(u) for u in urls]
    if not getattr(fs, "async_impl", False):
        return guarded(urls[0], "read", lambda: fs.cat_ranges(paths, starts, ends, on_error="return"))
    moved = [max(0, end - start) for start, end in zip(starts, ends)]
    make = [lambda path=path, start=start, end=end: fs._cat_file(path, start=start, end=end)
            for path, start, end in zip(paths, starts, ends)]
    return guarded(urls[0], "read", lambda: each_within(fs, make, [deadline(m) for m in moved], moved, concurrency))


def read_ranges(urls: list[str], starts: list[int], ends: list[int], concurrency: int) -> list[bytes]:
    """Bytes ``starts[i]:ends[i]`` of each object, fetched ``concurrency`` at a time (S3 range
    requests: a Parquet footer without the data before it); any failure is an error."""
    found = fetch_ranges(urls, starts, ends, concurrency)
    for url, data in zip(urls, found):
        if isinstance(data, BaseException):
            raise error(data, url, "read")
    return found


def exists(url: str) -> bool:
    fs = filesystem(url)
    return call(url, "read", fs, "exists", strip(url))


# -- writing -------------------------------------------------------------------------------------
def part_size() -> int:
    try:
        return max(MIN_PART_SIZE, int(os.environ.get(PART_SIZE_ENV, DEFAULT_PART_SIZE)))
    except ValueError:
        return DEFAULT_PART_SIZE


def put_bytes(url: str, data: bytes) -> None:
    fs = filesystem(url)
    call(url, "write", fs, "pipe_file", strip(url), data, moved=len(data))


def upload_file(local: Path, url: str, metadata: dict[str, str] | None = None) -> str | None:
    """Put ``local`` at ``url``: one PUT when small, a multipart upload of ``part_size()`` parts
    when larger, each request within its deadline (:mod:`curate.upload`). The object appears
    only when the upload completes; a failed one is aborted. ``metadata`` is stored with the
    object (S3's ``x-amz-meta-*``; other backends are not given it). Returns the new object's
    ETag (None where the backend gives none)."""
    fs = filesystem(url)
    size = part_size()
    if callable(getattr(fs, "_call_s3", None)):  # s3fs
        from curate import upload

        return upload.upload(fs, local, url, size, metadata)

    def copy() -> None:  # another backend's file object, bounded by that backend's timeouts
        with open(local, "rb") as source, fs.open(strip(url), "wb", block_size=size) as target:
            while chunk := source.read(size):
                target.write(chunk)

    guarded(url, "write", copy)
    return Listed.of(info(url)).etag


def check_bucket(url: str, doing: str = "write to") -> None:
    """Fail early, before any step runs, when the bucket is missing or not ours to list (one
    request for one key: the bucket's whole top level could be millions)."""
    from curate import listing

    bucket = strip(url).split("/", 1)[0]
    fs = filesystem(url)
    if listing.pages_of(fs):
        next(listing.pages(fs, url, bucket, "", "", listing.Budget(url), doing, max_keys=1))
    else:
        call(url, doing, fs, "ls", bucket, detail=False)


def publish(local: Path, url: str, listing_name: str) -> dict[str, int]:
    """Put a finished local output (a file or a folder) at ``url``, sending only what changed
    (:func:`curate.publish.publish`)."""
    from curate.publish import publish as publish_output

    return publish_output(local, url, listing_name)
