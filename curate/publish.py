"""Putting a finished output at its object storage URL, sending only what changed.

A re-run that exports the same rows uploaded every object again: hundreds of GB of WebDataset
shards re-sent by every cron run, each object's Last-Modified and ETag new, so that every sync
downstream copied them again. As a local export folder (``curate_export/folder.py``) leaves a file
holding the same bytes as it was, an object holding the same bytes is left as it was here:

- Every object curate uploads carries its SHA-256 as user metadata (``x-amz-meta-curate-sha256``),
  and a folder's listing (``_CURATE_EXPORT.json``) names, beside each file, its SHA-256, its size
  and the ETag the upload was answered with (``objects``).
- An object is unchanged when the listing's record has the local file's SHA-256 and size and the
  object listed now has the record's size and ETag: the ETag is compared with the one S3 gave
  *our* upload, never computed, so a multipart upload's ETag (not an MD5) and an encrypted
  object's work alike, and an object someone rewrote since (a new ETag) is not taken as ours. An
  object the listing has no record of, or whose ETag is not the record's (the upload of a killed
  run whose listing was not written, an object rewritten since), is asked for its metadata (one
  HEAD): the same size and SHA-256 is unchanged too. Size and times alone are never trusted.
- A single file (``table.parquet``) has no listing: one HEAD, its size and metadata.

A folder is published in the order of the local one: when anything changes, the listing first
names the old and the new objects with ``complete: false`` (a prefix left by a killed upload is
never taken for a whole export, and the re-run knows its objects as ours), then the changed objects
go up, then the objects of the earlier export that the new one lacks are deleted, then the listing
as the export wrote it (``complete: true``). Nothing changed: nothing is written. Only objects an
earlier listing named are ever deleted or overwritten: a prefix holding objects and no listing is
refused, and so is an export that would write over an object its listing does not name. A listed
object the new export lacks is deleted only while it is the one curate put there (the listing's
ETag, or curate's checksum in its metadata): one someone rewrote since is left, and no longer listed.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate import listing, remote
from curate.errors import OutputError
from curate.filekeys import inside
from curate.runfiles import json_value

# The user metadata holding an uploaded object's SHA-256 (S3 sends it as x-amz-meta-curate-sha256).
SHA256_METADATA = "curate-sha256"
# An export's listing read back from its prefix: a name, a checksum, a size and an ETag per file
# (~160 bytes), so an image folder of millions of files fits; a larger object is not ours.
LISTING_MAX_BYTES = 1 << 30
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class LocalFile:
    name: str  # below the output folder, with "/"
    path: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class Head:
    size: int | None
    etag: str | None
    sha256: str | None  # the metadata curate stored with it; None for an object curate did not upload


def publish(local: Path, url: str, listing_name: str) -> dict[str, int]:
    """Put a finished local output (a file or a folder) at ``url``; see the module docstring.
    Returns what was sent: ``uploaded_objects``, ``uploaded_bytes``, ``unchanged_objects``,
    ``deleted_objects``."""
    if local.is_file():
        return _publish_file(local, url)
    return _publish_folder(local, url, listing_name)


def sha256_of(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _sent(uploaded: list[LocalFile], unchanged: int, deleted: int = 0) -> dict[str, int]:
    return {"uploaded_objects": len(uploaded), "uploaded_bytes": sum(f.size for f in uploaded),
            "unchanged_objects": unchanged, "deleted_objects": deleted}


def _publish_file(local: Path, url: str) -> dict[str, int]:
    file = LocalFile(local.name, local, local.stat().st_size, sha256_of(local))
    if _holds(head(url), file):
        return _sent([], 1)
    remote.upload_file(local, url, {SHA256_METADATA: file.sha256})
    return _sent([file], 0)


def head(url: str) -> Head | None:
    """Object ``url``'s size, ETag and the SHA-256 curate stored with it (one HEAD); None when
    there is none, or when it cannot be told (not S3, or credentials that may write but not
    read): the caller then uploads."""
    fs = remote.filesystem(url)
    if not listing.pages_of(fs):
        return None
    bucket, key, _ = fs.split_path(remote.strip(url))
    [answer] = remote.guarded(url, "read", lambda: remote.each_within(
        fs, [lambda: fs._call_s3("head_object", Bucket=bucket, Key=key)], [remote.deadline()], [0], 1))
    if isinstance(answer, (FileNotFoundError, PermissionError)):
        return None
    if isinstance(answer, BaseException):
        raise remote.error(answer, url, "read")
    metadata = answer.get("Metadata") or {}
    tag, size, digest = answer.get("ETag"), answer.get("ContentLength"), metadata.get(SHA256_METADATA)
    return Head(size if isinstance(size, int) else None, tag.strip('"') if isinstance(tag, str) else None,
                digest if isinstance(digest, str) and _HEX64.fullmatch(digest) else None)


def _holds(found: Head | None, file: LocalFile) -> bool:
    return found is not None and found.size == file.size and found.sha256 == file.sha256


@dataclass
class Prefix:
    """What an earlier export left at the output's prefix."""

    listing: bytes | None  # its listing, as read
    present: dict[str, remote.Listed]  # every object under it, by name
    files: list[str]  # the objects its listing names: curate's to replace and delete
    records: dict[str, dict[str, Any]]  # the listing's checksum, size and ETag of each


def _publish_folder(local: Path, url: str, listing_name: str) -> dict[str, int]:
    names = sorted(name for name in (p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
                   if name != listing_name)
    listing_url = remote.join(url, listing_name)
    earlier = _earlier(url, listing_name, set(names))
    theirs = [name for name in names if name in earlier.present and name not in set(earlier.files)]
    if theirs:
        shown = ", ".join(theirs[:8]) + (f", … ({len(theirs)} objects)" if len(theirs) > 8 else "")
        raise OutputError(f"output prefix {url} holds objects curate did not write (its {listing_name} does not "
                          f"name them) where the export writes: {shown}",
                          "curate never overwrites objects it did not write: move those objects away, or point "
                          "the output at a new or empty prefix")
    files = [LocalFile(name, local / name, (local / name).stat().st_size, sha256_of(local / name)) for name in names]
    kept: dict[str, dict[str, Any]] = {}
    send: list[LocalFile] = []
    for file in files:
        record = _unchanged(file, earlier.present.get(file.name), earlier.records.get(file.name),
                            remote.join(url, file.name))
        if record is None:
            send.append(file)
        else:
            kept[file.name] = record
    gone = sorted(name for name in set(earlier.files) - set(names) if name in earlier.present
                  and _still_ours(earlier, name, remote.join(url, name)))
    written = _local_listing(local / listing_name)
    if send or gone:
        # List both sets first, so a kill in the middle leaves a prefix a re-run still knows as ours
        # and never takes for a whole export.
        pending = {**{k: written[k] for k in ("format",) if k in written},
                   "files": sorted(set(earlier.files) | set(names)), "complete": False,
                   "objects": dict(sorted(kept.items()))}
        remote.put_bytes(listing_url, _dump(pending))
    for file in send:
        tag = remote.upload_file(file.path, remote.join(url, file.name), {SHA256_METADATA: file.sha256})
        kept[file.name] = {"sha256": file.sha256, "size": file.size, **({"etag": tag} if tag else {})}
    if gone:
        _delete(url, gone)
    final = _dump({**written, "files": names, "complete": True, "objects": dict(sorted(kept.items()))})
    if final != earlier.listing:
        remote.put_bytes(listing_url, final)
    return _sent(send, len(files) - len(send), len(gone))


DELETE_BATCH = 1000  # S3 deletes up to 1000 objects a request


def _delete(url: str, names: list[str]) -> None:
    """Delete the objects ``names`` under ``url``, each by its exact key. fsspec's ``rm`` expands
    a path holding ``*``, ``?`` or ``[`` as a glob: a prefix ``data[v2]`` deleted ``datav/…`` and
    ``data2/…`` (someone else's objects) and left its own, and a listed name ``*`` deleted every
    object of the export just uploaded."""
    fs = remote.filesystem(url)
    if not listing.pages_of(fs):
        for name in names:
            remote.call(url, "delete stale objects under", fs, "rm_file", remote.strip(remote.join(url, name)))
        return
    bucket, _, key = remote.strip(url).partition("/")
    under = f"{key}/" if key else ""
    for start in range(0, len(names), DELETE_BATCH):
        batch = [{"Key": under + name} for name in names[start:start + DELETE_BATCH]]
        answer = remote.call(url, "delete stale objects under", fs, "call_s3", "delete_objects", Bucket=bucket,
                             Delete={"Objects": batch, "Quiet": True})
        errors = answer.get("Errors") if isinstance(answer, dict) else None
        if errors:
            first = errors[0]
            raise OutputError(f"could not delete {len(errors)} stale object(s) under {url}, e.g. "
                              f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}",
                              "let these credentials delete objects under the prefix (s3:DeleteObject), then run "
                              "again: the listing still names them, so the next run deletes them")


def _earlier(url: str, listing_name: str, names: set[str]) -> Prefix:
    """The prefix as an earlier export left it: nothing, or objects with a listing curate could
    have written; anything else is refused (its objects are someone else's). Of the objects
    present, only those the export writes or the listing names are kept (a prefix may hold
    millions of someone else's)."""
    raw = _read_listing(remote.join(url, listing_name))
    ours = _ours(raw)
    if ours is not None:
        files = [name for name in ours["files"] if name != listing_name]
        named = names | set(files)
        return Prefix(raw, listing.objects_under(url, named.__contains__), files, _records(ours.get("objects")))
    existing = listing.first_names(url + "/", 8, "list")  # one request: to tell an empty prefix, and to show
    if existing:
        prefix = remote.strip(url)
        shown = ", ".join(e[len(prefix) + 1:] for e in existing[:8])
        raise OutputError(f"output prefix {url} is not empty and was not written by curate (no {listing_name}, "
                          f"or one naming objects outside the prefix); it holds: {shown}",
                          "curate never deletes objects it did not write: point the output at a new or empty "
                          "prefix, or move those objects away")
    return Prefix(raw, {}, [], {})


def _unchanged(file: LocalFile, now: remote.Listed | None, record: dict[str, Any] | None,
               url: str) -> dict[str, Any] | None:
    """The record of ``file``'s object when the object at its name holds ``file``'s bytes (see the
    module docstring), else None."""
    if now is None or now.size != file.size:
        return None
    if record is not None and now.etag is not None and record.get("etag") == now.etag:
        # the version the listing describes: its checksum is the record's
        return record if record["sha256"] == file.sha256 and record["size"] == file.size else None
    found = head(url)  # a version the listing does not describe: what curate stored with it says
    if _holds(found, file) and found is not None and found.etag:
        return {"sha256": file.sha256, "size": file.size, "etag": found.etag}
    return None


def _still_ours(earlier: Prefix, name: str, url: str) -> bool:
    """Whether the object ``name`` the earlier listing names is still the one curate put there:
    the listing's ETag, or (a killed run's upload, which no record names) curate's checksum in its
    metadata. One someone rewrote since is theirs: left as it is (the new listing no longer names
    it). A listing without records (an earlier curate's) cannot tell: its objects are curate's."""
    now, record = earlier.present[name], earlier.records.get(name)
    if not earlier.records:
        return True
    if record is not None and now.etag is not None and record.get("etag") == now.etag:
        return True
    found = head(url)
    return found is not None and found.sha256 is not None and (record is None or found.sha256 == record["sha256"])


def _read_listing(url: str) -> bytes | None:
    """The listing object's bytes (None when there is none), read up to one byte past the bound."""
    [data] = remote.fetch_ranges([url], [0], [LISTING_MAX_BYTES + 1], 1)
    if isinstance(data, FileNotFoundError):
        return None
    if isinstance(data, BaseException):
        raise remote.error(data, url, "read")
    return data


def _ours(raw: bytes | None) -> dict[str, Any] | None:
    """The listing, when it is one curate could have written: its files all inside the prefix (a
    listing is an object anyone could have put there, and the objects it names are deleted)."""
    if raw is None or len(raw) > LISTING_MAX_BYTES:
        return None
    try:
        listed = json_value(raw)
    except ValueError:
        return None
    files = listed.get("files") if isinstance(listed, dict) else None
    if not isinstance(files, list) or not all(inside(name) for name in files):
        return None
    return listed


def _records(objects: Any) -> dict[str, dict[str, Any]]:
    """A listing's records of its objects, those that are well formed (others are as none: the
    object is asked, or uploaded again)."""
    if not isinstance(objects, dict):
        return {}
    return {name: record for name, record in objects.items()
            if isinstance(record, dict) and isinstance(record.get("sha256"), str)
            and _HEX64.fullmatch(record["sha256"]) and type(record.get("size")) is int
            and isinstance(record.get("etag", ""), str)}


def _local_listing(path: Path) -> dict[str, Any]:
    """What the sink wrote in its listing (format, rows, shards…), kept in the published one."""
    try:
        written = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in written.items() if k not in ("files", "complete", "objects")} \
        if isinstance(written, dict) else {}


def _dump(listing_: dict[str, Any]) -> bytes:
    return json.dumps(listing_, indent=1, sort_keys=True).encode()
