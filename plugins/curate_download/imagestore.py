"""The image store: downloads shared between runs, keyed by URL and by the params that shape the
stored bytes, so re-runs and variants in other run directories never fetch an image twice.

A local directory or an fsspec URL (``s3://bucket/images``)::

    <image_store>/v1/records/ab/<key>.json     one per (url, params): the row's result
    <image_store>/v1/blobs/cd/<sha256>.<ext>   the stored image bytes, named by their own hash

``key`` is the SHA-256 of the URL and of every param that changes what is stored or which status
a row gets (``KEY_PARAMS``); the rest (threads, timeouts, retries, per-host limits) does not
change a result, so it is not part of the key. A record holds the row's ``status``,
``error_message``, sizes, ``sha256`` (of the bytes as served) and its blob's name.

Successes and failures that would fail again (404, not an image, too large, opted out) are
recorded; transient failures (429, 5xx, timeouts, connection errors) and refusals by the network
policy (which depend on the run's settings and on DNS) are not: the next run tries them again.

Concurrent runs need no lock: a blob is written before the record that names it, each write
is whole (a local file is written aside and renamed; an object PUT is atomic), and two runs
writing one key write equivalent records, either of which is correct.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from curate import remote

VERSION = "v1"
KEY_PARAMS = ("image_size", "resize_mode", "resize_only_if_bigger", "encode_format", "encode_quality",
              "min_image_size", "max_aspect_ratio", "max_image_area", "max_bytes", "disallowed_header_directives",
              "user_agent_token")
RESULT_FIELDS = ("status", "error_message", "width", "height", "original_width", "original_height", "sha256")


def record_key(url: str, params: dict[str, Any]) -> str:
    payload = {"url": url, **{name: params.get(name) for name in KEY_PARAMS}}
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
        return self._where("blobs", name[:2], name)

    # -- reading --------------------------------------------------------------------------------
    def records(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The records that exist among ``keys``."""
        paths = {self.record_path(key): key for key in keys}
        if self.local is None:
            found = remote.cat_many(list(paths))
        else:
            found = {}
            for path in paths:
                try:
                    found[path] = Path(path).read_bytes()
                except FileNotFoundError:
                    pass
        out = {}
        for path, data in found.items():
            try:
                record = json.loads(data)
            except ValueError:
                continue  # a torn or foreign file: fetch the row again, rewriting it
            if isinstance(record, dict) and record.get("status"):
                out[paths[path]] = record
        return out

    def blobs(self, names: list[str]) -> dict[str, bytes]:
        """The blobs that exist among ``names``."""
        paths = {self.blob_path(name): name for name in names}
        if self.local is None:
            return {paths[p]: data for p, data in remote.cat_many(list(paths)).items()}
        out = {}
        for path, name in paths.items():
            try:
                out[name] = Path(path).read_bytes()
            except FileNotFoundError:
                pass
        return out

    # -- writing --------------------------------------------------------------------------------
    def put(self, key: str, record: dict[str, Any], image: bytes | None, extension: str) -> None:
        """Write the blob (if any), then the record that names it."""
        record = {name: record.get(name) for name in RESULT_FIELDS}
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
        if skip_existing and target.exists():  # content-addressed: the same name is the same bytes
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        partial.write_bytes(data)
        os.replace(partial, target)
