"""Uploading a file to S3 a request at a time, each within its deadline (:func:`curate.remote.call`).

fsspec's file object (``fs.open(url, "wb")``), which uploaded before, left each request bounded
only by botocore's timeouts, and those bound each wait to send or to read the next bytes: an
endpoint that read an upload a few bytes at a time, or answered that way, held a run's export
for as long as it went on (a 4000-byte PUT read at 20 bytes a second: 140 s, then an error about
an unreachable endpoint; the answer to CreateMultipartUpload at 20 bytes a second: 27 s, then
success; with no end to the drip, no end to the wait). Here the upload makes the requests
fsspec's file made, through s3fs (its retries and errors), each with its own deadline:

- a file below the part size (:func:`curate.remote.part_size`) is one PutObject;
- a larger one is CreateMultipartUpload, an UploadPart for each ``part_size()`` bytes read (one
  part in memory at a time) and CompleteMultipartUpload: the same parts, so the same object and
  ETag, as before.

An upload that fails (or is interrupted: then the abort waits 10 s at most) after CreateMultipartUpload answered is aborted, best
effort and within the deadline of a request that moves nothing: S3 then drops the parts sent.
(Leaving fsspec's file on an error closed it, and closing it completed the upload with the parts
sent so far: a file of three parts whose second was refused once became an object of its first
two, there for every reader.)
The object appears only once CompleteMultipartUpload succeeds, whole; where its answer never
came, S3 may still have completed it, and then the object is whole too. Parts of an upload whose
CreateMultipartUpload answer never came, or whose abort failed (the error's hint says so), stay
stored, not visible, until a lifecycle rule (AbortIncompleteMultipartUpload) removes them.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from curate import remote
from curate.errors import StorageError

# Seconds an abort may take after Ctrl-C (otherwise a request's deadline, 300 s by default).
INTERRUPTED_ABORT_WAIT = 10.0


def upload(fs: Any, local: Path, url: str, part: int, metadata: dict[str, str] | None = None) -> str | None:
    """Put ``local`` at ``url`` (on s3fs's ``fs``) in parts of ``part`` bytes, with the user
    ``metadata`` given (``x-amz-meta-*``); see the module docstring. Returns the new object's ETag
    (without its quotes; None where the endpoint sent none): what tells this version of the
    object from any later one (:mod:`curate.publish`)."""
    bucket, key, _ = fs.split_path(remote.strip(url))
    extra = {"Metadata": metadata} if metadata else {}
    with open(local, "rb") as source:
        chunk = source.read(part)
        if len(chunk) < part:  # fsspec's file put a file below its block size in one request
            answer = remote.call(url, "write", fs, "call_s3", "put_object", Bucket=bucket, Key=key, Body=chunk,
                                 moved=len(chunk), **extra)
        else:
            count = max(1, -(-local.stat().st_size // part))  # for messages only
            started = remote.call(url, "start writing", fs, "call_s3", "create_multipart_upload", Bucket=bucket,
                                  Key=key, **extra)
            upload_id = _field(started, "UploadId", url, "start writing")
            try:
                parts: list[dict[str, Any]] = []
                while chunk:
                    number = len(parts) + 1
                    doing = f"write part {number} of {max(count, number)} of"
                    sent = remote.call(url, doing, fs, "call_s3", "upload_part", Bucket=bucket, Key=key,
                                       PartNumber=number, UploadId=upload_id, Body=chunk, moved=len(chunk))
                    parts.append({"PartNumber": number, "ETag": _field(sent, "ETag", url, doing)})
                    if "ChecksumSHA256" in sent:  # as s3fs's file keeps it
                        parts[-1]["ChecksumSHA256"] = sent["ChecksumSHA256"]
                    chunk = b""  # one part in memory at a time
                    chunk = source.read(part)
                # its body names every part (~100 bytes each, 1 MB at S3's 10,000): within a request's deadline
                answer = remote.call(url, "finish writing", fs, "call_s3", "complete_multipart_upload",
                                     Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
            except BaseException as exc:
                # after Ctrl-C the user is waiting to get their prompt back: a short wait on the abort
                wait = min(remote.deadline(), INTERRUPTED_ABORT_WAIT) if isinstance(exc, KeyboardInterrupt) \
                    else remote.deadline()
                left = _abort(fs, url, bucket, key, upload_id, wait)
                if left is not None and isinstance(exc, StorageError):
                    raise StorageError(exc.message, ". ".join(filter(None, [exc.hint, left]))) from None
                raise
    fs.invalidate_cache(remote.strip(url))
    tag = answer.get("ETag") if isinstance(answer, dict) else None
    return tag.strip('"') if isinstance(tag, str) and tag.strip('"') else None


def _field(answer: Any, name: str, url: str, doing: str) -> str:
    """The text ``name`` of an S3 answer, which an endpoint that is not S3 may have left out."""
    value = answer.get(name) if isinstance(answer, dict) else None
    if not isinstance(value, str) or not value:
        raise StorageError(f"cannot {doing} {url}: the storage endpoint's answer has no {name}",
                           "the endpoint does not answer as S3 does: check AWS_ENDPOINT_URL")
    return value


def _abort(fs: Any, url: str, bucket: str, key: str, upload_id: str, wait: float) -> str | None:
    """Abort the multipart upload ``upload_id``, within ``wait`` seconds: None once done (or when S3
    no longer knows it: completed, or aborted), else a sentence saying what is left."""
    try:
        [answer] = remote.each_within(fs, [lambda: fs._call_s3("abort_multipart_upload", Bucket=bucket, Key=key,
                                                               UploadId=upload_id)], [wait], [0], 1)
    except Exception as exc:  # the wait for a cancelled request that did not come back
        answer = exc
    if not isinstance(answer, Exception) or isinstance(answer, FileNotFoundError):  # FileNotFound: NoSuchUpload
        return None
    return (f"Its multipart upload could not be aborted ({remote.error(answer, url, 'abort the upload of').message}): "
            "unless the endpoint completed it, the parts sent stay stored, not visible as an object, until they "
            f"are aborted (`aws s3api abort-multipart-upload --bucket {shlex.quote(bucket)} --key {shlex.quote(key)} "
            f"--upload-id {shlex.quote(upload_id)}`) or a lifecycle rule (AbortIncompleteMultipartUpload) removes them")
