"""``download``: fetch every row's image with img2dataset and record what happened to it.

One input shard is one ``img2dataset.download`` call (in a child process, see ``worker.py``),
writing into the shard's own directory. Resume comes at two levels: the engine skips shards whose
marker exists, and inside an unfinished shard img2dataset's incremental mode skips the parts
(``samples_per_shard`` rows each) whose stats file exists. Measured on 2 cores, one call costs
seconds of process start-up (img2dataset imports torch through webdataset), so shards should stay
large, which the engine's default of 100k rows does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import polars as pl
from pydantic import Field, field_validator, model_validator

from curate.errors import StepError
from curate.filekeys import file_key, file_keys
from curate.params import PLACE, Params
from curate.runfiles import open_regular, read_text
from curate.schema import DROP_REASON, UID, URL, Image, Schema
from curate.shards import write_json_atomic, write_parquet_atomic
from curate.step import Step, StepContext
from curate_download import oldrecords, store
from curate_download.fetch import (
    DECODE_TOO_LARGE,
    IMAGE_TOO_LARGE,
    LIMITS_ENV,
    TOO_LARGE,
    FetchLimits,
    default_decode_bytes,
)
from curate_download.worker import (
    CHILD_DIED_EXIT,
    CHILD_DIED_FILE,
    PARENT_ENV,
    PARTS_ENV,
    POLICY_ENV,
    REFUSED,
    NetworkPolicy,
    prepared_url,
    proxy_problem,
)

log = logging.getLogger("curate_download")

Failure = Literal["failed_to_download", "failed_to_resize", "opted_out", "refused", "too_large",
                  "image_too_large", "missing_url"]
FAILURES: tuple[str, ...] = ("failed_to_download", "failed_to_resize", "opted_out", "refused", "too_large",
                             "image_too_large", "missing_url")
# Rows are classified by the start of their message, which the exception's type decides (urllib's
# "HTTP Error 404: …" and "<urlopen error …>", curate's own errors), never by text further on:
# a server writes some of that (a redirect's Location, the start of a reply without a status line;
# fetch.py puts the status code's standard phrase in place of the server's reason phrase), and a
# 404 whose reason phrase was curate's refusal made the row `refused` and the run advise setting
# allow_private_networks. Each pattern is anchored at the message's start.
URLOPEN = r"^(?:<urlopen error )?"  # urllib wraps an error raised while connecting
REFUSED_PATTERN = URLOPEN + re.escape(REFUSED + ": ")
PRIVATE_PATTERN = REFUSED_PATTERN + "host '"  # NetworkPolicy.address_problem: a private address
OPT_OUT = "Use of image disallowed by X-Robots-Tag directive"  # img2dataset's message, all of it
TOO_LARGE_PATTERN = URLOPEN + re.escape(TOO_LARGE + " (")
IMAGE_TOO_LARGE_PATTERN = f"^(?:{re.escape(IMAGE_TOO_LARGE)}|{re.escape(DECODE_TOO_LARGE)}) \\("
I2D_AREA_MARK = "image area too large"  # img2dataset's resizer, for formats fetch.py cannot measure
# OpenCV's decoder refusing an image over OPENCV_IO_MAX_IMAGE_PIXELS (which the step sets to max_image_area)
# or with a side over 2^20: "OpenCV(4.14.0) …: error: (-215:Assertion failed) pixels <=
# CV_IO_MAX_IMAGE_PIXELS in function 'validateInputImageSize'". It reaches OpenCV only in formats
# Pillow cannot read (Radiance HDR, say).
OPENCV_TOO_LARGE = (r"^OpenCV\([^)]*\) [^\n]*\(-215:Assertion failed\) [^\n]*"
                    r"CV_IO_MAX_IMAGE_(?:PIXELS|WIDTH|HEIGHT)\b")
NO_URL = "the row has no URL (url is null or empty)"
NO_RESULT = "img2dataset reported nothing for this row"
TMP_DIR = "tmp"  # the worker's TMPDIR (and wandb's directories), inside the shard's directory
RESULT_COLUMNS: Schema = {
    "status": pl.Utf8,
    "error_message": pl.Utf8,
    "width": pl.Int32,
    "height": pl.Int32,
    "original_width": pl.Int32,
    "original_height": pl.Int32,
    "sha256": pl.Utf8,
    "image": Image,
}
STALE_WORKER_SECONDS = 5.0
# max_buffered_bytes when unset (or max_bytes, if larger): 16 bodies of the default max_bytes, and
# thousands of ordinary web images (a few hundred KB each), so it binds only on bodies that are
# both big and many: img2dataset's own bound (2 x threads x max_bytes) is 4 GiB at the defaults.
DEFAULT_BUFFERED_BYTES = 512 * 2**20
MALLOC_THRESHOLD_ENV = "MALLOC_MMAP_THRESHOLD_"  # glibc's; other C libraries ignore it
ORIGIN = "image_origin"  # with an image_store: "store" or "web" (fetched by this run); null if neither
RETRY_FAILED = "retry_failed"  # ctx.extras flag set by `curate run --retry-failed`
# Failures worth another try later: HTTP 429 and 5xx, timeouts, refused/reset/closed connections,
# rows img2dataset lost. Not 404 and other 4xx, not an image, too large, opted out, refused.
# Anchored, like the patterns above: a 404 whose reason phrase said "timed out" was retried.
TRANSIENT_PATTERN = (r"^(?:HTTP Error (?:429|5\d\d): |" + URLOPEN[1:]
                     + r"(?:\[Errno -?\d+\] )?(?:_ssl\.c:\d+: )?"
                     r"(?:(?:The (?:read|write|handshake) operation |Connection )?timed out\b|"
                     r"[Cc]onnection (?:refused|reset|aborted)|Software caused connection abort|"
                     r"Remote end closed connection|RemoteDisconnected)|" + re.escape(NO_RESULT) + ")")
STORE_HITS = "store-hits.parquet"  # rows answered by the image store, decided once per job directory
STORED_MARK = "stored.done"  # this job directory's results are in the image store
STORE_UNTRUSTED = "store-untrusted.json"  # image store entries this job's look-up did not trust, and why


PNG_LEVEL = 6  # zlib's compression level for encode_format png without encode_quality: its own default


class DownloadParams(Params):
    image_size: int = Field(256, ge=8, le=16384, description="side of the stored image, in pixels")
    resize_mode: Literal["no", "border", "keep_ratio", "keep_ratio_largest", "center_crop"] = Field(
        "border", description="img2dataset's resize mode")
    resize_only_if_bigger: bool = False
    encode_format: Literal["jpg", "png", "webp"] = "jpg"
    encode_quality: int = Field(95, ge=0, le=100, description="JPEG/WebP quality 0-100; for png, zlib's "
                                "compression level 0-9 (unset: 6)")
    output_format: Literal["webdataset", "files"] = Field(
        "webdataset", description="webdataset: tars of <uid>.<ext>; files: directories of them")
    samples_per_shard: int = Field(10_000, ge=1, le=1_000_000,
                                   description="images per tar (img2dataset's number_sample_per_shard); "
                                               "also the unit of resume inside an input shard")
    timeout: float = Field(10.0, gt=0, le=600,
                           description="seconds for one attempt at a row, all of it: connecting, redirects, "
                                       "headers and body (a deadline, not a per-read timeout)")
    retries: int = Field(0, ge=0, le=10,
                         description="attempts after the first, for transient failures only (HTTP 429, 502, 503, "
                                     "504, connections refused or reset, timeouts before the headers)")
    backoff: float = Field(1.0, ge=0, le=600,
                           description="seconds before the first retry when the server sends no Retry-After; "
                                       "doubled for each further one")
    max_retry_wait: float = Field(30.0, ge=0, le=3600,
                                  description="longest wait before a retry: a longer Retry-After fails the row at "
                                              "once; a row takes at most (retries + 1) x timeout + retries x this")
    max_per_host: int | None = Field(None, ge=1, le=4096,
                                     description="attempts at one host at once, per img2dataset process "
                                                 "(null: no limit)", json_schema_extra={"fingerprint": False})
    host_rate: float | None = Field(None, gt=0, description="attempts started per second at one host, per "
                                                              "img2dataset process (null: no limit)",
                                    json_schema_extra={"fingerprint": False})
    max_bytes: int = Field(FetchLimits.max_bytes, ge=1024,
                           description="refuse a response body longer than this (status too_large), "
                                       "whatever its Content-Length says")
    max_buffered_bytes: int | None = Field(
        None, ge=2**20, le=2**40,
        description="bytes of response bodies one img2dataset process holds at once, fetched or being fetched and "
                    "not yet decoded: img2dataset keeps up to 2 x threads fetched bodies waiting for the process's "
                    "one decoding thread, 4 GiB at 64 threads and the default max_bytes. A fetch takes the bytes as "
                    "its body arrives and waits, within its timeout, while the budget is spent; at least max_bytes. null: 512 MiB, or max_bytes if larger",
        json_schema_extra={"fingerprint": False})
    min_image_size: int = Field(0, ge=0, description="reject images whose shorter side is smaller")
    max_image_area: float | None = Field(
        FetchLimits.max_image_area, gt=0,
        description="refuse images with more pixels, before decoding them (status image_too_large); null: no limit")
    max_decode_bytes: int | None = Field(
        None, ge=2**20, le=2**40,
        description="refuse an image whose decoding would take more memory than this, estimated from its header "
                    "before decoding (width x height x channels x bytes per sample, plus 72 bytes a pixel for "
                    "img2dataset's float64 blending of an alpha channel; status image_too_large). img2dataset "
                    "decodes one image at a time per process, so this bounds each process's decoding memory. "
                    "null: max_image_area x 20 bytes (1 GB by default), no limit if max_image_area is null")
    max_aspect_ratio: float | None = Field(None, ge=1, description="reject images more elongated than this")
    disallowed_header_directives: list[str] = Field(
        ["noai", "noimageai", "noindex", "noimageindex"],
        description="X-Robots-Tag directives that opt an image out ([] downloads everything)")
    user_agent_token: str | None = Field(None, description="identifies the crawler to X-Robots-Tag rules")
    drop_failed: bool | list[Failure] = Field(
        False, description="false: keep every row with its status; true: drop every failure; "
                           "a list: drop rows with these statuses (the drop reason names the status)")
    allow_private_networks: bool = Field(
        False, description="download from hosts that are or resolve to private, loopback or link-local addresses")
    allowed_hosts: list[str] = Field(
        [], description="host names or IP networks allowed even though they are private (loopback, LAN)")
    max_transient_share: float | None = Field(
        0.9, ge=0, le=1,
        description="the step fails when more than this share of the URLs it tried failed for reasons "
                    "another try may fix (connection refused or reset, timeouts, HTTP 429 and 5xx), or when "
                    "it fetched nothing and some failed so: its servers or network were likely down. It is "
                    "not kept as finished, and the next run fetches those rows again. null: never fail so",
        json_schema_extra={"fingerprint": False})
    processes: int = Field(1, ge=1, le=256, description="img2dataset processes per input shard",
                           json_schema_extra={"fingerprint": False})
    threads: int = Field(64, ge=1, le=4096, description="download threads per process",
                         json_schema_extra={"fingerprint": False})
    image_store: str | None = Field(
        None, description="a directory or fsspec URL (s3://bucket/images) holding downloads shared between runs: "
                          "rows found there are not fetched, fetched rows are added (see the README); null: off",
        json_schema_extra=PLACE)
    image_store_old_records: Literal["warn", "refetch", "reuse"] = Field(
        "warn", description="rows the image store answers with a record written before curate recorded its "
                            "decoder (it stored 16-bit PNGs white and EXIF-rotated JPEGs sideways until "
                            "2026-12-07): warn: reuse them, the summary warns with their count; refetch: fetch "
                            "them again and rewrite their records; reuse: reuse them without a warning")

    @field_validator("image_store")
    @classmethod
    def _image_store(cls, value: str | None) -> str | None:
        from curate.remote import is_url

        if value is None or is_url(value):
            return value
        if not value.strip():
            raise ValueError("must be a directory or a URL such as s3://bucket/images")
        return str(Path(value).expanduser().resolve())  # steps do not know the spec's directory

    @model_validator(mode="after")
    def _old_records_need_a_store(self) -> DownloadParams:
        if self.image_store is None and self.image_store_old_records != "warn":
            raise ValueError(f"image_store_old_records: {self.image_store_old_records} is about the records of an "
                             "image store, and image_store is not set: set image_store, or remove it")
        return self

    @model_validator(mode="after")
    def _png_level(self) -> DownloadParams:
        # img2dataset refused a PNG level over 9 only once its processes ran, and the step failed
        # with the tail of a multiprocessing traceback; the default of 95 is a JPEG quality.
        if self.encode_format == "png" and "encode_quality" in self.model_fields_set and self.encode_quality > 9:
            raise ValueError(f"encode_quality is zlib's compression level for encode_format png, 0-9 (got "
                             f"{self.encode_quality}); leave it unset for {PNG_LEVEL}")
        return self

    @property
    def quality(self) -> int:
        """What img2dataset is given: ``encode_quality``, or :data:`PNG_LEVEL` for a PNG without one."""
        if self.encode_format == "png" and "encode_quality" not in self.model_fields_set:
            return PNG_LEVEL
        return self.encode_quality

    @model_validator(mode="after")
    def _buffer_holds_a_body(self) -> DownloadParams:
        if self.max_buffered_bytes is not None and self.max_buffered_bytes < self.max_bytes:
            raise ValueError(f"max_buffered_bytes ({self.max_buffered_bytes:,}) must be at least max_bytes "
                             f"({self.max_bytes:,}): a body of max_bytes could never be fetched")
        return self

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        from curate_download.urls import HostRefused, browser_host

        for host in value:
            if not host.strip() or ("/" in host and not _is_network(host)):
                raise ValueError(f"not a host name or IP network: {host!r}")
            if _is_network(host.strip().removeprefix("[").removesuffix("]")):
                continue
            try:
                browser_host(host.strip())
            except HostRefused as exc:
                raise ValueError(f"{host.strip()!r} would allow no URL: it {exc.reason} (write the host as "
                                 f"URLs spell it, or remove it)") from None
        return [host.strip() for host in value]

    def fingerprint_dict(self) -> dict[str, Any]:
        data = super().fingerprint_dict()
        for name in ("image_store", "max_decode_bytes"):  # specs without them keep their cached downloads
            if data.get(name) is None:
                data.pop(name, None)
        # warn and reuse store the same rows (one warns): only refetch makes other rows
        if data.get("image_store_old_records") != "refetch":
            data.pop("image_store_old_records", None)
        return data

    @property
    def policy(self) -> NetworkPolicy:
        return NetworkPolicy(self.allow_private_networks, tuple(self.allowed_hosts))

    @property
    def limits(self) -> FetchLimits:
        decode_bytes = self.max_decode_bytes
        if decode_bytes is None:
            decode_bytes = default_decode_bytes(self.max_image_area)
        buffered = self.max_buffered_bytes
        if buffered is None:
            buffered = max(DEFAULT_BUFFERED_BYTES, self.max_bytes)
        return FetchLimits(max_bytes=self.max_bytes, max_image_area=self.max_image_area, max_decode_bytes=decode_bytes,
                           retries=self.retries, backoff=self.backoff, max_retry_wait=self.max_retry_wait,
                           max_per_host=self.max_per_host, host_rate=self.host_rate, max_buffered_bytes=buffered)

    @property
    def dropped_statuses(self) -> frozenset[str]:
        if self.drop_failed is True:
            return frozenset(FAILURES)
        return frozenset(self.drop_failed or ())


def _is_network(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


# What an untrusted spec may set of the step's protections: it may tighten them, never lift them.
UNTRUSTED_MAX_THREADS = 64


def untrusted_problems(p: DownloadParams) -> list[str]:
    """The params of an untrusted spec that would lift a protection of the user's machine: its
    private networks (loopback, LAN, a cloud's metadata address), the decompression-bomb bounds,
    and how much memory and how many threads and processes the download may take."""
    limits = FetchLimits()
    lifted = []
    if p.allow_private_networks:
        lifted.append("allow_private_networks: true (it could fetch from this machine, its LAN or a cloud's "
                      "metadata address)")
    if p.allowed_hosts:
        lifted.append(f"allowed_hosts {p.allowed_hosts} (private hosts it could fetch from)")
    if p.max_image_area is None or (limits.max_image_area and p.max_image_area > limits.max_image_area):
        lifted.append(f"max_image_area {p.max_image_area or 'null'} (more than {limits.max_image_area:,.0f} pixels: "
                      "a small file can decode to gigabytes)")
    if p.max_decode_bytes is not None and limits.max_decode_bytes and p.max_decode_bytes > limits.max_decode_bytes:
        lifted.append(f"max_decode_bytes {p.max_decode_bytes:,} (more than {limits.max_decode_bytes:,})")
    if p.max_bytes > limits.max_bytes:
        lifted.append(f"max_bytes {p.max_bytes:,} (more than {limits.max_bytes:,})")
    if p.max_buffered_bytes is not None and p.max_buffered_bytes > max(DEFAULT_BUFFERED_BYTES, limits.max_bytes):
        lifted.append(f"max_buffered_bytes {p.max_buffered_bytes:,} (more than {DEFAULT_BUFFERED_BYTES:,})")
    if p.threads > UNTRUSTED_MAX_THREADS:
        lifted.append(f"threads {p.threads} (more than {UNTRUSTED_MAX_THREADS})")
    cores = os.cpu_count() or 1
    if p.processes > cores:
        lifted.append(f"processes {p.processes} (more than this machine's {cores} cores)")
    if not lifted:
        return []
    return [f"an untrusted spec may not lift the download's protections: {'; '.join(lifted)}. Remove them, or "
            "review the spec and run it without --untrusted"]


class Download(Step):
    """Every row comes out with a ``status``; images are stored once, under the step's own
    directory, and rows point at them with ``image = {shard, key}`` where ``key`` is the uid."""

    name = "download"
    description = "fetch images with img2dataset, store them by uid, record a status per row"
    requires = ("img2dataset",)
    extra = "download"
    # 2: non-ASCII hosts encoded by UTS #46 (faß.de is no longer fetched from fass.de), so a run
    # made before does not hand its rows from the other host to a spec naming such URLs
    version = "2"
    reads: ClassVar[Schema] = {UID: pl.Utf8, URL: pl.Utf8}
    writes = RESULT_COLUMNS
    Params = DownloadParams

    @property
    def drops_rows(self) -> bool:  # type: ignore[override]
        return bool(self.params.dropped_statuses)

    def output_columns(self) -> Schema:
        return {**RESULT_COLUMNS, ORIGIN: pl.Utf8} if self.params.image_store else dict(RESULT_COLUMNS)

    def plan_check(self, input_schema: Schema) -> list[str]:
        return self.plan_check_params()

    def plan_check_params(self) -> list[str]:
        return untrusted_problems(self.params) if self.untrusted else []

    # -- running --------------------------------------------------------------------------------
    def process_shard(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        shard_dir = ctx.artifacts / f"shard-{ctx.shard or 0:05d}"
        shard_dir.mkdir(parents=True, exist_ok=True)
        columns = self.output_columns()
        previous = self._previous(ctx) if ctx.extras.get(RETRY_FAILED) else None
        if previous is not None:  # --retry-failed: redo the transient failures, keep every other row
            retry = previous.filter(transient())
            results = [previous.join(retry.select(UID), on=UID, how="anti", maintain_order="left")]
            checked = self._precheck(table.select(UID, URL).join(retry.select(UID), on=UID, how="semi",
                                                                 maintain_order="left"))
        else:
            results = []
            checked = self._precheck(table.select(UID, URL))
        pending = checked.filter(pl.col("status").is_null()).select(UID, URL)
        results.append(checked.filter(pl.col("status").is_not_null()).select(UID, "status", "error_message"))
        # A retry's own folder: a retry cut off resumes in it; one after a finished retry (whose shard
        # file is newer) fetches afresh, not the parts that retry finished (outcome.py).
        job_dir = shard_dir if previous is None else \
            shard_dir / f"retry-{_digest(pending[UID], self._previous_stamp(ctx))}"
        if pending.height:
            job_dir.mkdir(parents=True, exist_ok=True)
            results.append(self._obtain(pending, job_dir, ctx))
        merged = pl.concat(results, how="diagonal_relaxed")
        base = table.drop([c for c in columns if c in table.columns])
        out = base.join(merged, on=UID, how="left", maintain_order="left")
        out = out.with_columns([pl.col(c).cast(t) for c, t in columns.items() if c in out.columns])
        out = out.with_columns([pl.lit(None, t).alias(c) for c, t in columns.items() if c not in out.columns])
        unreported = out["status"].is_null()
        if unreported.any():  # every row leaves with a status, even if img2dataset lost one
            log.warning("download: %d row(s) of shard %s got no result from img2dataset", int(unreported.sum()), ctx.shard)
            out = out.with_columns(
                pl.when(unreported).then(pl.lit("failed_to_download")).otherwise(pl.col("status")).alias("status"),
                pl.when(unreported).then(pl.lit(f"{NO_RESULT} (see {job_dir / 'download.log'})"))
                .otherwise(pl.col("error_message")).alias("error_message"),
            )
        refused = out.filter(pl.col("status") == "refused")
        if refused.height:
            log.warning("download: %d of %d URLs in shard %s refused, e.g. %s", refused.height, out.height,
                        ctx.shard, refused["error_message"][0])
        drop = self.params.dropped_statuses
        if drop:
            out = out.with_columns(
                pl.when(pl.col("status").is_in(list(drop)))
                .then(pl.lit(f"{self.label}: ") + pl.col("status"))
                .otherwise(pl.lit(None, pl.Utf8))
                .alias(DROP_REASON)
            )
        return out

    def failed_to_retry(self, step_dir: Path) -> int:
        """Rows of a finished run whose download failed transiently (what --retry-failed redoes)."""
        files = [*step_dir.glob("data/shard-*.parquet"), *step_dir.glob("dropped/shard-*.parquet")]
        files = [f for f in files if "status" in pl.read_parquet_schema(f)]
        if not files:
            return 0
        rows = pl.concat([pl.read_parquet(f, columns=["status", "error_message"]) for f in files])
        return rows.filter(transient()).height

    def _previous(self, ctx: StepContext) -> pl.DataFrame | None:
        """This shard's rows as the last run of this step left them (kept and dropped)."""
        step_dir = ctx.extras.get("step_dir")
        if not step_dir:
            return None
        name = f"shard-{ctx.shard or 0:05d}.parquet"
        files = [f for f in (Path(step_dir) / "data" / name, Path(step_dir) / "dropped" / name) if f.exists()]
        frames = [frame for frame in (pl.read_parquet(f) for f in files) if "status" in frame.columns and frame.height]
        if not frames:
            return None
        wanted = [UID, *self.output_columns()]
        return pl.concat([f.select([c for c in wanted if c in f.columns]) for f in frames], how="diagonal_relaxed")

    def _previous_stamp(self, ctx: StepContext) -> str:
        """When this shard's rows were last written (the files :meth:`_previous` reads): a retry
        after a finished one gets a folder of its own."""
        step_dir = Path(ctx.extras.get("step_dir") or ".")
        name = f"shard-{ctx.shard or 0:05d}.parquet"
        stamps = []
        for path in (step_dir / "data" / name, step_dir / "dropped" / name):
            try:
                stamps.append(str(path.stat().st_mtime_ns))
            except OSError:
                stamps.append("-")
        return " " + " ".join(stamps)

    def _obtain(self, pending: pl.DataFrame, job_dir: Path, ctx: StepContext) -> pl.DataFrame:
        """Results for ``pending`` rows: from the image store where it has them, else fetched."""
        p = self.params
        frames = []
        self._forget_lost_images(job_dir)
        if p.image_store:
            hits, pending = self._from_store(pending, job_dir, ctx)
            frames.append(hits)
        parts = math.ceil(pending.height / p.samples_per_shard)
        if parts:
            self._fetch(pending, parts, job_dir, ctx)
            fetched = self._collect(parts, job_dir, ctx)
            if p.image_store:
                self._to_store(fetched, pending, job_dir, ctx)
                fetched = fetched.with_columns(pl.lit("web").alias(ORIGIN))
            frames.append(fetched)
        return pl.concat(frames, how="diagonal_relaxed")

    def _forget_lost_images(self, job_dir: Path) -> None:
        """Work of ``job_dir`` finished before whose images are gone now is done again: an img2dataset
        part whose stats file says done but whose re-keyed images are not there (deleted, or removed
        by the engine for being cut short: ``curate.storedimages``) is fetched again; images from
        the image store that are gone are looked up again, and since those hits decide how the rest
        splits into parts, the job's parts are fetched again too."""
        p = self.params
        i2d = job_dir / store.I2D_DIR
        hits = job_dir / STORE_HITS
        if hits.exists() and not _store_location(job_dir, p.output_format).exists():
            hits.unlink()
            (job_dir / STORED_MARK).unlink(missing_ok=True)
            finished = sorted(i2d.glob("*_stats.json"))
        else:
            finished = [stats for stats in sorted(i2d.glob("*_stats.json"))
                        if not _part_images_exist(job_dir, _part_of(stats), p.output_format)]
        for stats in finished:
            part = _part_of(stats)
            log.warning("download: the images of %s part %d are gone; fetching the part again", job_dir, part)
            stats.unlink()
            store.results_path(job_dir, part).unlink(missing_ok=True)
            location = store.image_location(job_dir, part, p.output_format)
            if location.is_dir() and not location.is_symlink():
                shutil.rmtree(location)
            else:
                location.unlink(missing_ok=True)

    def _store(self) -> Any:
        from curate_download.imagestore import ImageStore

        assert self.params.image_store is not None
        return ImageStore(self.params.image_store)

    def _from_store(self, pending: pl.DataFrame, job_dir: Path, ctx: StepContext) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(rows the image store answers, rows still to fetch). Decided once per job directory and
        kept (``store-hits.parquet``), so a resumed shard splits its rows into the same parts."""
        decided = job_dir / STORE_HITS
        if not decided.exists():
            write_parquet_atomic(self._look_up(pending, job_dir, ctx), decided)
        hits = pl.read_parquet(decided)
        return hits, pending.join(hits.select(UID), on=UID, how="anti", maintain_order="left")

    def _look_up(self, pending: pl.DataFrame, job_dir: Path, ctx: StepContext) -> pl.DataFrame:
        from curate_download.imagestore import RESULT_FIELDS, blob_name_problem, record_key

        p = self.params
        image_store = self._store()
        options = p.model_dump(mode="json")
        keys = [record_key(url, options) for url in pending[URL]]
        records, untrusted = image_store.records(sorted(set(keys)))
        for key, record in list(records.items()):  # a shared store is not trusted: see imagestore.py
            problem = record["blob"] and blob_name_problem(record["blob"], p.encode_format)
            if problem:
                untrusted[key] = problem
                del records[key]
        names = sorted({record["blob"] for record in records.values() if record["blob"]})
        blobs, bad_blobs = image_store.blobs(names, p.max_bytes)
        for key, record in list(records.items()):
            if record["blob"] in bad_blobs:
                untrusted[key] = f"its blob {record['blob']} {bad_blobs[record['blob']]}"
                del records[key]
            elif record["blob"] and record["blob"] not in blobs:
                del records[key]  # its blob is gone: fetch the row
        if untrusted:
            _report_untrusted(untrusted, image_store, job_dir, ctx)
        old = oldrecords.split_old(records, p.image_store_old_records)
        oldrecords.write_found(job_dir, image_store.root, p.image_store_old_records, old, keys)
        location = _store_location(job_dir, p.output_format)
        shard = _relative(location, Path(ctx.extras.get("store_dir") or ctx.run_dir))
        rows, images = [], []
        for uid, key in zip(pending[UID], keys, strict=True):
            record = records.get(key)
            if record is None:
                continue  # not stored, not trusted, its blob gone, or old and refetched: fetch it
            success = record["status"] == "success"  # a trusted success always has its blob
            name = file_key(uid)
            if success:
                images.append((name, blobs[record["blob"]]))
            rows.append({UID: uid, **{c: record.get(c) for c in RESULT_FIELDS},
                         "image": {"shard": shard, "key": name} if success else None, ORIGIN: "store"})
        _write_images(location, images, p.encode_format, p.output_format)
        schema = {UID: pl.Utf8, **RESULT_COLUMNS, ORIGIN: pl.Utf8}
        return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)

    def _to_store(self, fetched: pl.DataFrame, pending: pl.DataFrame, job_dir: Path, ctx: StepContext) -> None:
        """Add this job's results that would not change on another try to the image store."""
        if (job_dir / STORED_MARK).exists():
            return
        from concurrent.futures import ThreadPoolExecutor

        from curate.images import iter_images
        from curate_download.imagestore import record_key

        p = self.params
        image_store = self._store()
        options = p.model_dump(mode="json")
        lasting = ["success", "failed_to_download", "failed_to_resize", "opted_out", "too_large", "image_too_large"]
        rows = fetched.join(pending.select(UID, URL), on=UID, how="inner", maintain_order="left") \
            .filter(pl.col("status").is_in(lasting) & ~transient())
        images = iter_images(rows["image"], ctx.extras.get("store_dir") or ctx.run_dir, as_bytes=True,
                             within=ctx.image_folders)
        with ThreadPoolExecutor(8) as pool:
            # An image longer than max_bytes (re-encoded larger than served) would not be read back
            # (see _look_up): it is not stored, so the next run fetches it again.
            done = [pool.submit(image_store.put, record_key(row[URL], options), row, image, p.encode_format)
                    for row, image in zip(rows.iter_rows(named=True), images, strict=True)
                    if image is None or len(image) <= p.max_bytes]
            for future in done:
                future.result()
        (job_dir / STORED_MARK).write_text(str(rows.height))

    def _precheck(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Refusals that need no network (scheme, IP literals, localhost) and rows without a URL;
        ``url`` becomes the URL to fetch, encoded as a browser sends it (``worker.fetchable_url``)."""
        policy = self.params.policy
        rows = rows.with_columns(pl.col(URL).cast(pl.Utf8))  # an all-null column may come typed Null
        statuses, errors, urls = [], [], []  # urls: as fetched (the output keeps the source's url column)
        for url in rows[URL].to_list():
            if url is None or not url.strip():
                statuses.append("missing_url")
                errors.append(NO_URL)
                urls.append(None)
                continue
            fetched, problem = prepared_url(policy, url.strip())
            statuses.append(None if problem is None else "refused")
            errors.append(problem)
            urls.append(fetched)
        return rows.with_columns(pl.Series("status", statuses, pl.Utf8), pl.Series("error_message", errors, pl.Utf8),
                                 pl.Series(URL, urls, pl.Utf8))

    def _job(self, shard_dir: Path, workers: tuple[int, int]) -> dict[str, Any]:
        p = self.params
        job: dict[str, Any] = {
            "url_list": str(shard_dir / "urls.parquet"),
            "input_format": "parquet",
            "url_col": URL,
            "save_additional_columns": [UID],
            "output_folder": str(shard_dir / store.I2D_DIR),
            "output_format": p.output_format,
            "incremental_mode": "incremental",
            "number_sample_per_shard": p.samples_per_shard,
            "image_size": p.image_size,
            "resize_mode": p.resize_mode,
            "resize_only_if_bigger": p.resize_only_if_bigger,
            "encode_format": p.encode_format,
            "encode_quality": p.quality,
            "timeout": p.timeout,
            "retries": 0,  # fetch.py retries transient failures only, honouring Retry-After
            "min_image_size": p.min_image_size,
            "disallowed_header_directives": list(p.disallowed_header_directives),
            "user_agent_token": p.user_agent_token,
            "compute_hash": "sha256",
            "extract_exif": False,
            "enable_wandb": False,
            "distributor": "multiprocessing",
            "processes_count": workers[0],
            "thread_count": workers[1],
        }
        if p.max_image_area is not None:
            job["max_image_area"] = p.max_image_area  # fetch.py checks headers; this catches what it cannot read
        if p.max_aspect_ratio is not None:
            job["max_aspect_ratio"] = p.max_aspect_ratio
        return job

    def _fetch(self, fetch: pl.DataFrame, parts: int, shard_dir: Path, ctx: StepContext) -> None:
        """Run img2dataset over the parts not yet done; report rows as parts finish."""
        done = {part for part in range(parts) if store.stats_path(shard_dir, part).exists()}
        if len(done) == parts:
            return
        problem = proxy_problem(self.params.policy)
        if problem:
            raise StepError(self.label, ctx.shard, problem,
                            hint="a proxy hides the address each URL leads to from the network policy")
        _wait_for_stale_worker(shard_dir, self.label, ctx.shard)
        write_parquet_atomic(fetch, shard_dir / "urls.parquet")
        workers = (min(self.params.processes, parts - len(done)), self.params.threads)
        write_json_atomic(self._job(shard_dir, workers), shard_dir / "job.json")
        (shard_dir / CHILD_DIED_FILE).unlink(missing_ok=True)
        tmp = shard_dir / TMP_DIR
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        from curate_download import worker

        env = self._environment(tmp)
        env[PARTS_ENV] = str(parts)
        with open(shard_dir / "download.log", "ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, worker.__file__, str(shard_dir / "job.json")],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                cwd=shard_dir, start_new_session=True,  # its own process group, killed as one
            )
        (shard_dir / "worker.pid").write_text(str(process.pid))
        try:
            while True:
                try:
                    code = process.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    pass
                for part in range(parts):
                    if part not in done and store.stats_path(shard_dir, part).exists():
                        done.add(part)
                        ctx.advance(min(self.params.samples_per_shard, fetch.height - part * self.params.samples_per_shard))
        finally:
            try:  # the whole group: img2dataset's processes may outlive a worker that died
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
            shutil.rmtree(tmp, ignore_errors=True)
        missing = [part for part in range(parts) if not store.stats_path(shard_dir, part).exists()]
        if code != 0 or missing:
            tail = _tail(shard_dir / "download.log")
            hint = f"see {shard_dir / 'download.log'}; re-running resumes, finished parts are kept"
            if code == CHILD_DIED_EXIT and (shard_dir / CHILD_DIED_FILE).exists():
                what = (shard_dir / CHILD_DIED_FILE).read_text().strip()
                raise StepError(self.label, ctx.shard, f"{what}; part(s) {missing} unfinished, the others are kept "
                                                       "and re-running resumes from them",
                                hint=hint + "; if memory ran out, lower threads, processes, max_bytes or max_decode_bytes")
            if code is not None and code < 0:
                what = f"img2dataset's main process was killed by signal {-code} ({signal.Signals(-code).name})"
            elif code:
                what = f"img2dataset exited with status {code}"
            else:
                what = f"img2dataset did not finish part(s) {missing}"
            raise StepError(self.label, ctx.shard, f"{what}: {tail}", hint=hint)

    def _environment(self, tmp: Path) -> dict[str, str]:
        """The worker's environment: the policy and limits, and every temporary directory inside
        the shard's own (img2dataset imports wandb, which leaves directories in the system's)."""
        env = dict(os.environ)
        env[POLICY_ENV] = self.params.policy.to_json()
        env[PARENT_ENV] = str(os.getpid())
        env[LIMITS_ENV] = self.params.limits.to_json()
        if self.params.max_image_area is not None:  # OpenCV's own cap, for what fetch.py cannot measure
            env["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(int(self.params.max_image_area))
        env["NO_ALBUMENTATIONS_UPDATE"] = "1"  # albumentations otherwise asks PyPI for a newer version
        # glibc keeps a freed block of up to 32 MiB in the thread's arena once its dynamic mmap threshold
        # has grown past it: 16 download threads then hold 16 MiB each after their bodies are decoded,
        # and memory stays far above max_buffered_bytes. A fixed threshold gives every body of 1 MiB or
        # more back to the system when it is freed (measured: 16 MiB bodies, 16 threads, 32 MiB budget:
        # 175 MiB over a calm run without it, nothing with it).
        env.setdefault(MALLOC_THRESHOLD_ENV, str(2**20))
        # OpenCV decodes some formats (Radiance HDR…) through a temporary file in /tmp, not TMPDIR,
        # and leaves it there when it refuses the image: a hostile server's 9 MB each.
        env["OPENCV_TEMP_PATH"] = str(tmp)
        for name in ("TMPDIR", "TEMP", "TMP", "WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR",
                     "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
            env[name] = str(tmp)
        env["WANDB_MODE"] = "disabled"
        env["WANDB_SILENT"] = "true"
        return env

    def _collect(self, parts: int, shard_dir: Path, ctx: StepContext) -> pl.DataFrame:
        """img2dataset's per-row results, with images re-keyed by uid and statuses refined."""
        store_dir = Path(ctx.extras.get("store_dir") or ctx.run_dir)
        p = self.params
        frames = []
        for part in range(parts):
            result = pl.read_parquet(store.results_path(shard_dir, part))
            result = result.with_columns(file_keys(result[UID]).alias("_file_key"))
            stored = result.filter(pl.col("status") == "success")
            store.rekey(shard_dir, part, p.output_format, p.encode_format,
                        dict(zip(stored["key"], stored["_file_key"])))
            location = _relative(store.image_location(shard_dir, part, p.output_format), store_dir)
            frames.append(result.select(
                UID,
                _status(),
                _error(p.max_image_area),
                *[pl.col(c) for c in ("width", "height", "original_width", "original_height", "sha256")],
                pl.when(pl.col("status") == "success")
                .then(pl.struct(pl.lit(location).alias("shard"), pl.col("_file_key").alias("key")))
                .alias("image"),
            ))
        return pl.concat(frames, how="vertical_relaxed")

    # -- reporting ------------------------------------------------------------------------------
    def result_problem(self, ctx: StepContext) -> tuple[str, str] | None:
        """A download whose servers or network were down is not kept as finished (outcome.py)."""
        from curate_download.outcome import unreachable_problem

        rows = self._rows(ctx, ["status", "error_message", URL])
        if rows is None:
            return None
        rows = rows.with_columns(transient().alias("transient"))
        return unreachable_problem(rows, self.params.max_transient_share)

    def _rows(self, ctx: StepContext, columns: list[str]) -> pl.DataFrame | None:
        """``columns`` of every row the step wrote, kept and dropped (None: none written)."""
        step_dir = ctx.extras.get("step_dir")
        files = sorted(Path(step_dir).glob("data/shard-*.parquet")) + sorted(Path(step_dir).glob("dropped/shard-*.parquet")) \
            if step_dir else []
        files = [f for f in files if "status" in pl.read_parquet_schema(f)]
        if not files:
            return None
        return pl.concat([pl.read_parquet(f, columns=columns) for f in files])

    def summary(self, ctx: StepContext) -> dict[str, Any]:
        """Rows per status, and a warning naming the setting to change when URLs were refused."""
        rows = self._rows(ctx, ["status", "error_message"])
        if rows is None:
            return {}
        counts = {s: int(n) for s, n in rows.group_by("status").len().sort("status").iter_rows()}
        summary: dict[str, Any] = {"status": counts, "warnings": refusal_warnings(rows)}
        from curate_download.outcome import nothing_fetched_warning

        if (nothing := nothing_fetched_warning(rows)) is not None:
            summary["warnings"].append(nothing)
            log.warning("download: %s", nothing)
        untrusted = untrusted_store_records(ctx.artifacts)
        if untrusted:
            summary["image_store_untrusted"] = untrusted
            summary["warnings"].append(
                f"{untrusted} image store record(s) were not trusted (a link, a non-file, a blob whose bytes "
                "do not match its name, or a name the store never writes) and their rows were fetched again; "
                f"see {STORE_UNTRUSTED} in the shards' directories under {ctx.artifacts}. Something besides "
                "curate wrote into the image store: check who can write to it")
        facts, warnings = oldrecords.summarize(ctx.artifacts, self.params.image_store)
        summary.update(facts)
        summary["warnings"].extend(warnings)
        return summary


def untrusted_store_records(artifacts: Path) -> int:
    """How many image store records this step's look-ups did not trust (see ``_report_untrusted``)."""
    total = 0
    for path in artifacts.glob(f"shard-*/**/{STORE_UNTRUSTED}"):
        try:
            total += len(json.loads(path.read_text())["untrusted"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return total


def transient() -> pl.Expr:
    """Rows whose download failed in a way another try may fix (see TRANSIENT_PATTERN)."""
    return (pl.col("status") == "failed_to_download") & \
        pl.col("error_message").fill_null("").str.contains(TRANSIENT_PATTERN)


def _digest(uids: pl.Series, salt: str = "") -> str:
    return hashlib.sha256(("\n".join(uids.to_list()) + salt).encode()).hexdigest()[:12]


def _write_images(location: Path, images: list[tuple[str, bytes]], encode_format: str, output_format: str) -> None:
    """The store's images for this job, as a tar (or a folder) of ``<key>.<ext>`` in row order
    (``key``: the uid's :func:`~curate.filekeys.file_key`)."""
    if output_format != "webdataset":
        location.mkdir(parents=True, exist_ok=True)
        for name, data in images:
            target = location / f"{name}.{encode_format}"
            partial = target.with_name(f".{target.name}.tmp")
            partial.write_bytes(data)
            os.replace(partial, target)
        return
    import io

    partial = location.with_name(f".{location.name}.{os.getpid()}.tmp")
    with tarfile.open(partial, "w", format=tarfile.USTAR_FORMAT) as out:
        for name, data in images:
            info = tarfile.TarInfo(f"{name}.{encode_format}")
            info.size = len(data)
            info.mode = 0o644
            out.addfile(info, io.BytesIO(data))
    os.replace(partial, location)


def refusal_warnings(rows: pl.DataFrame) -> list[str]:
    refused = rows.filter(pl.col("status") == "refused")
    if refused.height == 0:
        return []
    private = refused.filter(pl.col("error_message").str.contains(PRIVATE_PATTERN))
    out = []
    if private.height:
        out.append(f"{private.height} URL(s) refused because their host is a private, loopback or link-local "
                   "address; to download them set `allow_private_networks: true` in the download step's params "
                   f"(or list the hosts in `allowed_hosts`). First: {private['error_message'][0]}")
    other = refused.height - private.height
    if other:
        first = refused.filter(~pl.col("error_message").str.contains(PRIVATE_PATTERN))
        out.append(f"{other} URL(s) refused (not http or https, malformed or too long). "
                   f"First: {first['error_message'][0]}")
    return out


def _status() -> pl.Expr:
    error = pl.col("error_message").fill_null("")
    return (
        pl.when(pl.col("status") == "success").then(pl.lit("success"))
        .when(error.str.contains(REFUSED_PATTERN)).then(pl.lit("refused"))
        .when(error == OPT_OUT).then(pl.lit("opted_out"))
        .when(error.str.contains(TOO_LARGE_PATTERN)).then(pl.lit("too_large"))
        .when(error.str.contains(IMAGE_TOO_LARGE_PATTERN) | (error == I2D_AREA_MARK)
              | error.str.contains(OPENCV_TOO_LARGE)).then(pl.lit("image_too_large"))
        .otherwise(pl.col("status"))
        .alias("status")
    )


def _error(max_image_area: float | None = None) -> pl.Expr:
    """urllib wraps a refusal as ``<urlopen error refused …>``; keep just the refusal. OpenCV's
    assertion about its pixel cap becomes a sentence about ``max_image_area``."""
    error = pl.col("error_message")
    refusal = error.str.strip_prefix("<urlopen error ").str.strip_suffix(">")
    return (pl.when(error.str.contains(REFUSED_PATTERN)).then(refusal)
            .when(error.str.contains(OPENCV_TOO_LARGE)).then(pl.lit(opencv_too_large(max_image_area)))
            .otherwise(error).alias("error_message"))


def opencv_too_large(max_image_area: float | None) -> str:
    """The message for an image OpenCV's decoder refused as too large."""
    if max_image_area is None:
        return ("image larger than OpenCV's decoder allows (2^30 pixels, or a side over 2^20 pixels): OpenCV "
                "refused to decode it; set max_image_area to refuse such images by name")
    return (f"{IMAGE_TOO_LARGE} ({max_image_area:,.0f} pixels): OpenCV refused to decode the image, whose "
            "header declares more pixels than that (or a side over 2^20 pixels); its format is one Pillow "
            "cannot read, so its size could not be checked before decoding")


def _report_untrusted(untrusted: dict[str, str], image_store: Any, job_dir: Path, ctx: StepContext) -> None:
    """Entries of the image store that were present but not trusted: their rows are fetched
    again (and their entries rewritten). Kept in the job's directory and counted in the summary."""
    key, why = next(iter(sorted(untrusted.items())))
    log.warning("download: %d image store record(s) for shard %s not trusted, their rows are fetched again "
                "(%s); e.g. %s: %s", len(untrusted), ctx.shard, image_store, image_store.record_path(key),
                why)
    write_json_atomic({"image_store": image_store.root, "untrusted": dict(sorted(untrusted.items()))},
                      job_dir / STORE_UNTRUSTED)


def _store_location(job_dir: Path, output_format: str) -> Path:
    """Where a job's images from the image store are (a tar, or a folder)."""
    return job_dir / ("store.tar" if output_format == "webdataset" else "store")


def _part_images_exist(job_dir: Path, part: int, output_format: str) -> bool:
    """Whether part ``part``'s images are there: re-keyed, or still img2dataset's to re-key."""
    rekeyed = store.image_location(job_dir, part, output_format)
    name = store.part_name(part) + (".tar" if output_format == "webdataset" else "")
    own = job_dir / store.I2D_DIR / name
    return rekeyed.exists() or own.exists()


def _part_of(stats: Path) -> int:
    """The part a stats file of img2dataset's (``NNNNN_stats.json``) is about."""
    return int(stats.name.partition("_")[0])


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


TAIL_BYTES = 64 * 1024  # the end of a worker's log is what an error quotes; a long download's log is GBs


def _tail(path: Path, lines: int = 5) -> str:
    """The last ``lines`` lines of a worker's log, read from its last :data:`TAIL_BYTES` only
    (through ``open_regular``: a pipe left in the store where the log goes is not waited on)."""
    try:
        with open_regular(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(0, size - TAIL_BYTES))
            text = handle.read(TAIL_BYTES).decode("utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    if len(text) > 1 and size > TAIL_BYTES:
        text = text[1:]  # the first line read may be cut
    return " | ".join(text[-lines:]) or "(empty log)"


def _wait_for_stale_worker(shard_dir: Path, label: str, shard: int | None) -> None:
    """A worker whose curate process was killed exits within a second (it watches its parent);
    one that is still alive after that belongs to another run downloading this same shard."""
    pid_file = shard_dir / "worker.pid"
    try:
        pid = int(read_text(pid_file, limit=64))  # a pid; anything longer is not one curate wrote
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + STALE_WORKER_SECONDS
    while _is_our_worker(pid, shard_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _is_our_worker(pid, shard_dir):
        raise StepError(label, shard, f"another process (pid {pid}) is downloading this shard right now",
                        hint="wait for that run to finish, or stop it")


def _is_our_worker(pid: int, shard_dir: Path) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: assume the worst
    return str(shard_dir / "job.json").encode() in cmdline


