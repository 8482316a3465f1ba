"""Image store records written by an older decoder: reported, reused or fetched again as the
params say, never reused without a word.

A store written before curate decoded images as browsers show them (``pixels.py``) holds 16-bit
PNGs stored white and EXIF-rotated JPEGs stored sideways, as ``success``; its records carry no
decoder version (:data:`curate_download.pixels.DECODER`, recorded in each record since). Keying
records on it would fetch every image of every store again, so an old record still answers its
row, and ``image_store_old_records`` says what to do with it:

- ``warn`` (the default): reuse it, and the step's summary warns once, with the count of rows
  and the two fixes below;
- ``refetch``: fetch those rows again, as if the store had nothing, and rewrite their records
  (only the rows this run needs: the store is upgraded as specs use it);
- ``reuse``: reuse it without a warning (the store holds no such images, or was written by a
  curate that decoded them right but did not yet mark its records); the summary still counts them.

Only the records whose result the decoder shaped are old in this sense (:data:`DECODED`): a 404
or an opted-out row is the same whatever decodes. Each job directory writes what it found to
``store-old.json`` when it decides its store hits (once, like ``store-hits.parquet``); the
summary adds them up.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from curate.shards import write_json_atomic
from curate_download.pixels import DECODER

log = logging.getLogger("curate_download")

OldRecords = Literal["warn", "refetch", "reuse"]
OLD_RECORDS_FILE = "store-old.json"
# The statuses whose record the decoder decides: its pixels and sizes, whether the body decoded,
# and the decoding-memory estimate (which counts the decoder's copies).
DECODED = frozenset({"success", "failed_to_resize", "image_too_large"})
DECODER_CHANGE = ("16-bit PNGs (and 12-bit JPEGs) white and EXIF-rotated phone photos sideways, "
                  "as success")


def is_old(record: dict[str, Any]) -> bool:
    """Whether a (trusted) record was written by a decoder before this one, for a status it shapes."""
    decoder = record.get("decoder")
    return record["status"] in DECODED and (decoder is None or decoder < DECODER)


def split_old(records: dict[str, dict[str, Any]], mode: OldRecords) -> dict[str, str]:
    """The keys of ``records`` written by an older decoder, with their status. With ``refetch``
    they are taken out of ``records``: their rows are fetched again, and their records rewritten."""
    old = {key: record["status"] for key, record in records.items() if is_old(record)}
    if mode == "refetch":
        for key in old:
            del records[key]
    return old


def write_found(job_dir: Path, store_root: str, mode: OldRecords, old_keys: dict[str, str],
                keys_of_rows: list[str]) -> None:
    """Record what one job's look-up found in ``job_dir``: rows answered by old records (or
    fetched again for having one), by status. Nothing is written when there were none."""
    counts: dict[str, int] = {}
    for key in keys_of_rows:
        if key in old_keys:
            counts[old_keys[key]] = counts.get(old_keys[key], 0) + 1
    path = job_dir / OLD_RECORDS_FILE
    if not counts:
        path.unlink(missing_ok=True)
        return
    write_json_atomic({"image_store": store_root, "decoder": DECODER, "mode": mode,
                       "rows": dict(sorted(counts.items()))}, path)


def found(artifacts: Path) -> dict[str, dict[str, int]]:
    """Rows by mode and status, summed over the step's job directories (retries included)."""
    total: dict[str, dict[str, int]] = {}
    for path in sorted(artifacts.glob(f"shard-*/**/{OLD_RECORDS_FILE}")):
        try:
            data = json.loads(path.read_text())
            by_status = total.setdefault(str(data["mode"]), {})
            for status, count in data["rows"].items():
                by_status[status] = by_status.get(status, 0) + int(count)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    return total


def summarize(artifacts: Path, store_root: str | None) -> tuple[dict[str, Any], list[str]]:
    """The summary's facts (``image_store_old_records``: rows reused from old records;
    ``image_store_old_refetched``: rows fetched again for having one) and its warning, which is
    also logged here, once for the step."""
    by_mode = found(artifacts)
    facts: dict[str, Any] = {}
    warnings = []
    refetched = sum(by_mode.get("refetch", {}).values())
    if refetched:
        facts["image_store_old_refetched"] = refetched
    reused = {**by_mode.get("warn", {})}
    for status, count in by_mode.get("reuse", {}).items():
        reused[status] = reused.get(status, 0) + count
    rows = sum(reused.values())
    if rows:
        facts["image_store_old_records"] = rows
    warned = sum(by_mode.get("warn", {}).values())
    if warned:
        statuses = ", ".join(f"{count} {status}" for status, count in sorted(by_mode["warn"].items()))
        warning = (
            f"{warned} row(s) came from image store records written before curate recorded how it decodes "
            f"images ({statuses}; image store {store_root}). Their images may be wrong: curate's decoder "
            f"until 2026-12-07 stored {DECODER_CHANGE}. To fetch those rows again and rewrite their records, "
            "set `image_store_old_records: refetch` in the download step's params (only the rows this run "
            "uses are fetched), or point image_store at a new folder; if only curate from 2026-12-07 on "
            "wrote to the store, or it holds no such images, `image_store_old_records: reuse` keeps them "
            "without this warning")
        log.warning("download: %s", warning)
        warnings.append(warning)
    return facts, warnings
