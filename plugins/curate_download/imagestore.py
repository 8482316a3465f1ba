"""The image store: downloads shared between runs, keyed by URL and by the params that shape the
stored bytes, so re-runs and variants in other run directories never fetch an image twice.

A local directory or an fsspec URL (``s3://bucket/images``)::

    <image_store>/v1/records/ab/<key>.json     one per (url, params): the row's result
    <image_store>/v1/blobs/cd/<sha256>.<ext>   the stored image bytes, named by their own hash

``key`` is the SHA-256 of the URL and of every param that changes what is stored or which status
a row gets (``KEY_PARAMS``); the rest (threads, timeouts, retries, per-host limits) does not
change a result, so it is not part of the key. A record holds the row's ``status``,
``error_message``, sizes, ``sha256`` (of the bytes as served), its blob's name, and ``decoder``:
how the image was decoded (:data:`curate_download.pixels.DECODER`). Records written before it
existed have none; they may hold images decoded the old way (16-bit images white, EXIF-rotated
JPEGs sideways), and the step reports the rows it takes from them (``oldrecords.py``). The mark
is per record, not one file for the store: a store is written by many runs at once, old curates
among them, and each record is written whole, so its mark is always the one of the code that
wrote it. (A curate from before ignores the field: it reads only the fields it knows.)

Successes and failures that would fail again (404, not an image, too large, opted out) are
recorded; transient failures (429, 5xx, timeouts, connection errors) and refusals by the network
policy (which depend on the run's settings and on DNS) are not: the next run tries them again.

Concurrent runs need no lock: a blob is written before the record that names it, each write
is whole (a local file is written aside under a name of its own and renamed; an object PUT is
atomic), and two runs or threads writing one key or one blob write equivalent bytes, either of
which is correct.

A shared store is not trusted: anyone who can write to it could plant a record. A record is used
only if it is a JSON object of the fields the store writes, with a status the store stores, and,
for a success, a blob name of the form the store writes (:data:`BLOB_NAME`); files are read only
if they are regular files (not links, FIFOs or devices) no longer than a limit, and a blob only if
its bytes hash to its name. Anything else is reported as untrusted (:class:`Found`) and treated
as a miss: the row is fetched again and its entry rewritten.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any, NamedTuple

from curate import remote
from curate.errors import CurateError
from curate.runfiles import json_value
from curate_download.pixels import DECODER

VERSION = "v1"
KEY_PARAMS = ("image_size", "resize_mode", "resize_only_if_bigger", "encode_format", "encode_quality",
              "min_image_size", "max_aspect_ratio", "max_image_area", "max_bytes", "disallowed_header_directives",
              "user_agent_token")
# Keyed only when set, so that the records of specs without them (all, before they existed) still match.
KEY_PARAMS_IF_SET = ("max_decode_bytes",)
RESULT_FIELDS = ("status", "error_message", "width", "height", "original_width", "original_height", "sha256")
# The statuses the download step stores (transient failures and refusals are not stored).
STORED_STATUSES = frozenset({"success", "failed_to_download", "failed_to_resize", "opted_out", "too_large",
                             "image_too_large"})
BLOB_EXTENSIONS = ("jpg", "png", "webp")  # the download step's encode_format choices
BLOB_NAME = re.compile(r"[0-9a-f]{64}\.(?:jpg|png|webp)")  # sha256 of the bytes, then the extension
RECORD_MAX_BYTES = 64 * 1024  # a record is a few hundred bytes; anything longer is not one of ours
READ_CONCURRENCY = 32  # objects read at once (botocore's pool holds 10 connections: the rest wait their turn)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # the store never writes links: a link is not followed
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class ImageStoreError(CurateError):
    """The image store was asked for something it never writes (a programming error, not data)."""


class Found(NamedTuple):
    """What a read found: ``items`` by key (or blob name), and the ones present but not trusted,
    with why (a tampered, foreign or broken entry: the caller fetches those rows again)."""

    items: dict[str, Any]
    rejected: dict[str, str]


class _Untrusted(Exception):
    pass


def blob_name_problem(name: object, extension: str | None = None) -> str | None:
    """Why ``name`` is not a blob name the store writes (``<sha256>.<ext>``), or None.
    With ``extension``, the name must also end with it (a record names the blob of its own format)."""
    if not isinstance(name, str) or BLOB_NAME.fullmatch(name) is None:
        shown = repr(name) if len(repr(name)) <= 90 else f"{repr(name)[:45]}…{repr(name)[-40:]}"
        return (f"blob name {shown} is not <64 lowercase hex digits>.<{'|'.join(BLOB_EXTENSIONS)}> "
                "as the store writes it")
    if extension is not None and not name.endswith("." + extension):
        return f"blob name {name!r} is not a .{extension} image, the format this key stores"
    return None


def record_problem(record: object) -> str | None:
    """Why ``record`` (a parsed record file) is not one the store writes, or None."""
    if not isinstance(record, dict):
        return "is not a JSON object"
    status = record.get("status")
    if status not in STORED_STATUSES:
        return f"status {status!r:.60} is not one the store records ({', '.join(sorted(STORED_STATUSES))})"
    for name in ("error_message", "sha256"):
        if record.get(name) is not None and not isinstance(record[name], str):
            return f"{name} is not a string"
    for name in ("width", "height", "original_width", "original_height"):
        value = record.get(name)
        if value is not None and (type(value) is not int or not 0 <= value < 2**31):
            return f"{name} is not a size in pixels"
    decoder = record.get("decoder")  # absent: written before curate recorded it (oldrecords.py)
    if decoder is not None and (type(decoder) is not int or not 1 <= decoder < 2**31):
        return f"decoder {decoder!r:.40} is not a decoder version"
    blob = record.get("blob")
    if status == "success":
        return None if blob is not None else "a success that names no blob"
    return None if blob is None else f"a {status} that names a blob"


def record_key(url: str, params: dict[str, Any]) -> str:
    payload = {"url": url, **{name: params.get(name) for name in KEY_PARAMS}}
    payload.update({name: params[name] for name in KEY_PARAMS_IF_SET if params.get(name) is not None})
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class ImageStore:
    """Records and blobs under ``root`` (a local path, or a URL for object storage)."""

    def __init__(self, root: str, spec_dir: Path | None = None):
        if remote.is_url(root):
            self.root = root.rstrip("/") + "/" + VERSION
            self.local: Path | None = None
        else:
            path = Path(root).expanduser()
            if not path.is_absolute() and spec_dir is not None:
                path = spec_dir / path
            self.local = path / VERSION
            self.root = str(self.local)

    def __repr__(self) -> str:
        return f"ImageStore({self.root!r})"

    # -- naming ---------------------------------------------------------------------------------
    def _where(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def record_path(self, key: str) -> str:
        return self._where("records", key[:2], f"{key}.json")

    def blob_path(self, name: str) -> str:
        problem = blob_name_problem(name)
        if problem:  # a name from a record is checked before it gets here: never a path out of the store
            raise ImageStoreError(f"{self!r}: {problem}",
                                  hint="check blob names with blob_name_problem() first")
        return self._where("blobs", name[:2], name)

    # -- reading --------------------------------------------------------------------------------
    def records(self, keys: list[str]) -> Found:
        """The records that exist among ``keys``, and those present but not to be trusted."""
        paths = {self.record_path(key): key for key in keys}
        found, rejected = self._read(list(paths), RECORD_MAX_BYTES)
        out, untrusted = {}, {paths[path]: why for path, why in rejected.items()}
        for path, data in found.items():
            try:
                record = json_value(data)
            except ValueError:
                untrusted[paths[path]] = "is not JSON"  # a foreign file: fetch the row again, rewriting it
                continue
            problem = record_problem(record)
            if problem:
                untrusted[paths[path]] = problem
            else:
                out[paths[path]] = {name: record.get(name) for name in (*RESULT_FIELDS, "blob", "decoder")}
        return Found(out, untrusted)

    def blobs(self, names: list[str], max_bytes: int) -> Found:
        """The blobs that exist among ``names``, read only if no longer than ``max_bytes`` and
        only if their bytes hash to their name; the others that exist, and any name the store
        would not write, are rejected."""
        rejected = {name: problem for name in names if (problem := blob_name_problem(name))}
        paths = {self.blob_path(name): name for name in names if name not in rejected}
        found, unread = self._read(list(paths), max_bytes)
        rejected.update({paths[path]: why for path, why in unread.items()})
        out = {}
        for path, data in found.items():
            name = paths[path]
            if hashlib.sha256(data).hexdigest() != name.partition(".")[0]:
                rejected[name] = "its bytes do not hash to its name"
            else:
                out[name] = data
        return Found(out, rejected)

    def _read(self, paths: list[str], limit: int) -> tuple[dict[str, bytes], dict[str, str]]:
        """(path -> bytes of each file that exists and is trusted, path -> why the others are not)."""
        if not paths:
            return {}, {}
        found, rejected = {}, {}
        if self.local is None:
            for path, data in _cat_bounded(paths, limit).items():
                if len(data) > limit:
                    rejected[path] = f"is longer than {limit} bytes"
                else:
                    found[path] = data
            return found, rejected
        for path in paths:
            try:
                found[path] = _read_local(path, limit)
            except FileNotFoundError:
                pass
            except _Untrusted as exc:
                rejected[path] = str(exc)
        return found, rejected

    # -- writing --------------------------------------------------------------------------------
    def put(self, key: str, record: dict[str, Any], image: bytes | None, extension: str) -> None:
        """Write the blob (if any), then the record that names it, marked with this code's decoder."""
        record = {name: record.get(name) for name in RESULT_FIELDS}
        record["decoder"] = DECODER
        if image is not None:
            name = f"{hashlib.sha256(image).hexdigest()}.{extension}"
            self._write(self.blob_path(name), image, skip_existing=True)
            record["blob"] = name
        else:
            record["blob"] = None
        self._write(self.record_path(key), json.dumps(record, sort_keys=True).encode(), skip_existing=False)

    def _write(self, path: str, data: bytes, skip_existing: bool) -> None:
        if self.local is None:
            remote.put_bytes(path, data)
            return
        target = Path(path)
        if skip_existing and _holds(target, data):  # content-addressed: the same name, the same bytes
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own per write: threads of one process put the same blob when rows share an image.
        partial = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
        try:
            with os.fdopen(os.open(partial, flags, 0o666), "wb") as out:  # the umask decides, as for any file
                out.write(data)
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise


def _read_local(path: str, limit: int) -> bytes:
    """A regular file's bytes if it is at most ``limit`` long. Raises FileNotFoundError when it is
    absent and _Untrusted when it is a link, a FIFO, a device, a directory or longer."""
    flags = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC
    try:
        fd = os.open(path, flags)  # O_NONBLOCK: opening a FIFO does not wait for a writer
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _Untrusted("is a symbolic link, which the store never writes") from None
        if exc.errno == errno.ENOTDIR:
            raise FileNotFoundError(path) from None
        raise _Untrusted(f"cannot be opened ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Untrusted("is not a regular file")
        if info.st_size > limit:
            raise _Untrusted(f"is longer than {limit} bytes ({info.st_size})")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise _Untrusted(f"is longer than {limit} bytes")
    return data


def _holds(target: Path, data: bytes) -> bool:
    """Whether ``target`` is a regular file holding exactly ``data`` (else it is rewritten)."""
    try:
        return _read_local(str(target), len(data)) == data
    except (FileNotFoundError, _Untrusted):
        return False


def _cat_bounded(urls: list[str], limit: int) -> dict[str, bytes]:
    """The objects that exist among ``urls``, each read up to ``limit + 1`` bytes (one more
    than allowed, so a longer one shows), fetched concurrently."""
    data = remote.fetch_ranges(urls, [0] * len(urls), [limit + 1] * len(urls), READ_CONCURRENCY)
    return {url: chunk for url, chunk in zip(urls, data, strict=True) if isinstance(chunk, bytes)}
