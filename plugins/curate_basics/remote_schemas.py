"""The columns of a file source's objects in a bucket, read at validation without downloading them.

Every object is checked against the others, as every local file is (``file_schemas.common_schema``), but
cheaply: a Parquet object by its footer (one range request for its last ``TAIL`` bytes, a second
when the footer is larger), a text object by its first whole lines (enough for a CSV header, or
for the JSON Lines scan; of a compressed object, those its first bytes decompress to). Validation
checks the objects in listing order while ``MAX_OBJECTS`` and ``MAX_BYTES`` last and says so when it
stops short; the run checks every object once it has downloaded them, before any row is read.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl

from curate import remote
from curate.errors import SourceError
from curate_basics import compressed
from curate_basics.locate import size_text

TAIL = 64 * 1024  # bytes fetched from a Parquet object's end: its footer, in all but the widest tables
MAX_OBJECTS = 5000  # objects validation checks at most
MAX_BYTES = 1 << 30  # bytes validation fetches at most
CONCURRENCY = 32  # requests in flight
IN_FLIGHT_BYTES = 128 << 20  # text prefixes held in memory at once
MAGIC = b"PAR1"

log = logging.getLogger("curate_basics")
ListedObject = tuple[str, remote.Listed]  # an object's URL and what its listing said of it


def size_of(url: str, entry: remote.Listed) -> int:
    return int(entry.size) if entry.size is not None else int(remote.info(url)["size"])


def checked_count(url: str, objects: list[ListedObject], costs: list[int]) -> int:
    """How many objects, from the first, validation checks: at least one, at most
    ``MAX_OBJECTS``, while the bytes fetched stay within ``MAX_BYTES``. Says what it leaves."""
    count, spent = 0, 0
    for cost in costs[:MAX_OBJECTS]:
        if count and spent + cost > MAX_BYTES:
            break
        count, spent = count + 1, spent + cost
    if count < len(objects):
        log.warning("source.path %s: validation checked the columns of the first %d of %d objects (it fetches at "
                    "most %d objects, %s); the other %d, from %s on, are checked when the run has downloaded "
                    "them, before any row is read", url, count, len(objects), MAX_OBJECTS, size_text(MAX_BYTES),
                    len(objects) - count, objects[count][0])
    return count


def parquet_schemas(objects: list[ListedObject]) -> Iterator[dict[str, pl.DataType]]:
    """Each object's schema from its footer, ``CONCURRENCY`` objects at a time."""
    for start in range(0, len(objects), CONCURRENCY):
        batch = objects[start: start + CONCURRENCY]
        urls = [url for url, _ in batch]
        sizes = [size_of(url, entry) for url, entry in batch]
        for url, size in zip(urls, sizes):
            if size < len(MAGIC) * 2 + 4:
                raise _not_parquet(url)
        tails = remote.read_ranges(urls, [max(0, size - TAIL) for size in sizes], sizes, CONCURRENCY)
        lengths = [_footer_length(url, tail, size) for url, tail, size in zip(urls, tails, sizes)]
        short = [i for i, (tail, length) in enumerate(zip(tails, lengths)) if length + 8 > len(tail)]
        longer = remote.read_ranges([urls[i] for i in short], [sizes[i] - 8 - lengths[i] for i in short],
                                    [sizes[i] for i in short], CONCURRENCY)
        for i, tail in zip(short, longer):
            tails[i] = tail
        for url, tail, length in zip(urls, tails, lengths):
            # The footer alone, between the magic bytes: Polars reads the schema from it as from the file.
            footer = MAGIC + tail[len(tail) - 8 - length:]
            try:
                yield dict(pl.read_parquet_schema(io.BytesIO(footer)))
            except (pl.exceptions.PolarsError, OSError) as exc:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise SourceError(f"cannot read {url} as parquet: its footer: {reason}",
                                  "check source.format, or the object") from None


def _not_parquet(url: str) -> SourceError:
    return SourceError(f"cannot read {url} as parquet: it does not end in Parquet's footer ({MAGIC.decode()})",
                       "check source.format, or the object: it is not Parquet, or was not uploaded whole")


def _footer_length(url: str, tail: bytes, size: int) -> int:
    if tail[-4:] != MAGIC:
        raise _not_parquet(url)
    length = int.from_bytes(tail[-8:-4], "little")
    if length + 12 > size:
        raise SourceError(f"cannot read {url} as parquet: its footer claims {length} bytes, more than the object's "
                          f"{size}", "check the object: it was not uploaded whole, or is damaged")
    return length


def text_copies(objects: list[ListedObject], prefixes: list[tuple[int, int]], cache_dir: Path,
                copy_dir: Path) -> Iterator[Path]:
    """Per object, a local file holding its first whole lines: up to ``prefix[0]`` bytes and at
    least ``prefix[1]`` lines. That is the object itself, downloaded into the run's cache (the
    run reads it from there) when it is no larger or has fewer lines, else a copy of those
    lines in ``copy_dir``. In listing order, ``CONCURRENCY`` at a time at most."""
    widest = max((limit for limit, _ in prefixes), default=1)
    workers = max(1, min(CONCURRENCY, IN_FLIGHT_BYTES // widest))
    pool = ThreadPoolExecutor(workers, thread_name_prefix="curate-source-prefix")
    try:
        yield from pool.map(lambda job: _text_copy(*job, cache_dir, copy_dir), zip(objects, prefixes))
    finally:
        pool.shutdown(cancel_futures=True)


def _text_copy(listed: ListedObject, prefix: tuple[int, int], cache_dir: Path, copy_dir: Path) -> Path:
    url, entry = listed
    limit, min_lines = prefix
    if size_of(url, entry) > limit:
        data = remote.read_ranges([url], [0], [limit], 1)[0]
        digest = hashlib.sha256(f"{url}\0{remote.version_of(entry)}".encode()).hexdigest()[:20]
        copy = copy_dir / digest / url.rsplit("/", 1)[-1]
        copy.parent.mkdir(parents=True, exist_ok=True)
        kind = next((kind for magic, kind in compressed.MAGIC.items() if data.startswith(magic)), None)
        if kind in compressed.READERS:  # the first lines of the text its first bytes hold, named as text
            data = compressed.text_start(data, kind, limit, url)
            copy = copy.with_name(compressed.text_name(copy.name))
        if data.count(b"\n") >= min_lines:
            copy.write_bytes(data[: data.rindex(b"\n") + 1])
            return copy
    return remote.download(url, entry, cache_dir)

