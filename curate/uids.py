"""Deriving a source's uids: the md5 of each row's content, numbered when the content repeats.

A row's uid is the first 16 hex digits of the md5 of its content; the second and later rows with
the same content get the md5 of the content and their occurrence number instead, so uids are
unique, stable across re-runs and independent of shard size.

Numbering needs to know which contents repeat before the first row streams out. Two ways, the
same uids:

- **hash set** (the usual case): one aggregate query finds the 64-bit hashes of the contents
  that occur more than once (a collision only adds a candidate); the rows then stream once, and
  only the rows whose hash is in that set are numbered, in source order, with a counter per hash
  (``Occurrences``). Memory: ~21 bytes per repeated content, bounded by ``max_repeats``, plus a
  lookup filter of at most 16 MB.
- **window** (more repeated contents than that): a second query numbers the repeated rows with a
  window partitioned by the content and sorted by position, which DuckDB spills to disk.

A source of at most a shard of rows (``one_pass``) is read once: its rows, held as one shard is,
give the hashes that repeat themselves. The aggregate read every file a second time: DuckDB
opens each file of a query (~0.3 ms a file), a third of the source step of 10,000 small files.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate.duck import cursor, literal, quote, registered, stream
from curate.errors import SourceError
from curate.schema import UID

LATER_UID = "_later_uid"
# A derived uid is this many hex digits of an md5: 64 bits, so n rows of different content share
# one with a chance of about n²/2^65 (2.7e-8 at 1M rows, 2.7e-4 at 100M, 2.7 % at 10^9).
UID_DIGITS = 16
# Tables from this size on are checked for a shared uid after deriving (``check_distinct``): the
# check is a group-by over every uid, ~0.3 CPU s per million rows, and below this size the chance
# it guards against is under one in a million.
CHECKED_FROM_ROWS = 6_000_000


@dataclass(frozen=True)
class Content:
    """A row's content, the text its uid hashes: the ``columns``, and the SQL that joins them."""

    columns: tuple[str, ...]

    @property
    def sql(self) -> str:
        # Each column as text (NULL as ''), joined by the unit separator (U+001F), then U+001E and one
        # 0/1 per column for NULL: NULL and '' are different contents. Inside a value U+001E is
        # written U+001E 'r' and then U+001F as U+001E 'u', so no value holds a bare separator and
        # two contents are one text only when they are one content: url "a<US>b" with alt-text "c"
        # and url "a" with "b<US>c" were one text, one uid, and a step dropping either lost the
        # other's lineage. Values without either character (every one before) read as they did.
        def text(column: str) -> str:
            value = f"coalesce(CAST({quote(column)} AS VARCHAR), '')"
            return f"replace(replace({value}, chr(30), chr(30) || 'r'), chr(31), chr(30) || 'u')"

        parts = ", ".join(text(c) for c in self.columns)
        nulls = " || ".join(f"CAST(({quote(c)} IS NULL)::INTEGER AS VARCHAR)" for c in self.columns)
        return f"concat_ws(chr(31), {parts}) || chr(30) || {nulls}"

    @property
    def hash_sql(self) -> str:
        """A 64-bit hash equal for equal contents (the columns' text; NULL hashes as NULL), without
        building the content: a third cheaper than hashing it. Unequal contents may share one."""
        return "hash(" + ", ".join(f"CAST({quote(c)} AS VARCHAR)" for c in self.columns) + ")"


# Per repeated content the hash set keeps its hash (8 bytes), the first md5 seen with it (8), a
# count (4) and a flag (1); the share of run.memory_limit it may take is 1/32. (Its lookup filter,
# at most 16 MB, is 2 bytes per hash at that bound.)
BYTES_PER_REPEAT = 32


def derived_uids(con: Any, relation: str, content: Content, quoted: str, batch_rows: int,
                 max_repeats: int, one_pass: bool = False) -> Iterator[pl.DataFrame]:
    """The rows of ``relation`` (with ``_file``/``_row``) in source order, each with its uid;
    ``quoted`` names the columns to stream. ``one_pass``: the rows are few enough to hold (a
    shard's worth at most), and are read once."""
    held: Iterator[pl.DataFrame] | None = None
    if one_pass:
        frames = list(_hashed_rows(con, relation, content, quoted, batch_rows))
        repeated = _repeated_among([frame["_hash"] for frame in frames], max_repeats)
        if repeated is None:
            frames.clear()  # the window reads the rows again
        else:
            frames.reverse()  # handed over from the end of the list, each let go once the writer has it
            held = _popped(frames)
    else:
        repeated = _repeated_hashes(con, relation, content.hash_sql, max_repeats)
    if repeated is None:
        yield from _numbered_by_window(con, relation, content.sql, quoted, batch_rows)
    else:
        rows = held if held is not None else _hashed_rows(con, relation, content, quoted, batch_rows)
        yield from _numbered_by_hash_set(con, rows, content, repeated)


def _popped(frames: list[pl.DataFrame]) -> Iterator[pl.DataFrame]:
    while frames:
        yield frames.pop()


def _repeated_hashes(con: Any, relation: str, hash_sql: str, max_repeats: int) -> np.ndarray | None:
    """The sorted, distinct hashes of contents that occur more than once; None when there are
    more than ``max_repeats`` of them (then the window numbers the rows)."""
    parts, total = [], 0
    query = f"SELECT {hash_sql} AS _hash FROM {relation} GROUP BY _hash HAVING count(*) > 1"
    for frame in stream(con, query):
        total += frame.height
        if total > max_repeats:
            return None
        parts.append(frame["_hash"].to_numpy().astype(np.uint64, copy=False))
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.uint64)


def _repeated_among(hashes: list[pl.Series], max_repeats: int) -> np.ndarray | None:
    """What :func:`_repeated_hashes` answers, from every row's hash at hand."""
    if not hashes:
        return np.zeros(0, dtype=np.uint64)
    every = np.concatenate([h.to_numpy().astype(np.uint64, copy=False) for h in hashes])
    distinct, counts = np.unique(every, return_counts=True)
    repeated = distinct[counts > 1]
    return None if len(repeated) > max_repeats else repeated


def _hashed_rows(con: Any, relation: str, content: Content, quoted: str,
                 batch_rows: int) -> Iterator[pl.DataFrame]:
    """The rows in source order with ``_file``, ``_row``, their first uid and their content's hash."""
    return stream(con, f"SELECT _file, _row, substr(md5({content.sql}), 1, {UID_DIGITS}) AS uid, "
                       f"{content.hash_sql} AS _hash, {quoted} FROM {relation}", batch_rows)


def _numbered_by_hash_set(con: Any, rows: Iterator[pl.DataFrame], content: Content,
                          repeated: np.ndarray) -> Iterator[pl.DataFrame]:
    occurrences = Occurrences(repeated)
    order = _SourceOrder()
    later = cursor(con)  # the main stream keeps its connection busy until it is drained
    later.execute("SET preserve_insertion_order=true")  # later uids come back in their rows' order
    try:
        for frame in rows:
            order.check(_position(frame))
            hashes = frame["_hash"].to_numpy().astype(np.uint64, copy=False)
            candidates = np.flatnonzero(occurrences.contains(hashes))
            frame = frame.drop("_file", "_row", "_hash")
            if len(candidates):
                first_uids = frame[UID].gather(candidates).str.to_integer(base=16, dtype=pl.UInt64).to_numpy()
                numbers = occurrences.number(hashes[candidates], first_uids)
                repeats = numbers > 1
                index = candidates[repeats]
                if len(index):
                    uids = _later_uids(later, frame[index].select(content.columns), content, numbers[repeats])
                    frame = frame.with_columns(frame[UID].scatter(index, uids))
            yield frame
    finally:
        later.close()


def _later_uids(con: Any, rows: pl.DataFrame, content: Content, numbers: np.ndarray) -> pl.Series:
    """The uids of rows that repeat an earlier row's content: the md5 of the content and the
    occurrence number, by the same SQL as every other uid (DuckDB's casts make the content)."""
    numbered = rows.with_columns(pl.Series("_occurrence", numbers, dtype=pl.Int64)).to_arrow()
    with registered(con, "_curate_later_rows", numbered) as name:
        numbered_content = f"{content.sql} || chr(29) || _occurrence::VARCHAR"
        return con.sql(f'SELECT substr(md5({numbered_content}), 1, {UID_DIGITS}) AS uid FROM "{name}"').pl().to_series()


class Occurrences:
    """Occurrence numbers of rows whose content hash repeats, handed over in source order.

    A row is told apart by its hash and its first uid (64 bits of the content's md5). Each
    repeated hash counts the rows of the first content seen with it; another content with the
    same hash (a collision) is counted apart, in a dictionary."""

    def __init__(self, hashes: np.ndarray):
        self.hashes = hashes
        self.counts = np.zeros(len(hashes), dtype=np.uint32)
        self.owner = np.zeros(len(hashes), dtype=np.uint64)
        self.owned = np.zeros(len(hashes), dtype=bool)
        self.collided: dict[tuple[int, int], int] = {}
        # A byte per value of the hashes' low bits, set where a repeated hash has them: most rows
        # are ruled out by one lookup (~16 slots per hash, at most 16 MB) before a binary search.
        size = 1 << int(min(24, max(16, np.ceil(np.log2(16 * max(1, len(hashes)))))))
        self.low_bits = np.uint64(size - 1)
        self.maybe = np.zeros(size, dtype=bool)
        self.maybe[hashes & self.low_bits] = True

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        # The filter, then a binary search for the rows it lets through; not polars' is_in, which
        # builds a hash set of every repeated hash per call (most of the work with millions).
        found = self.maybe[hashes & self.low_bits]
        rows = np.flatnonzero(found)
        if len(rows):
            slots = np.minimum(np.searchsorted(self.hashes, hashes[rows]), len(self.hashes) - 1)
            found[rows] = self.hashes[slots] == hashes[rows]
        return found

    def number(self, hashes: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """1 for a content's first row, 2 for its second…; ``hashes`` must be repeated ones."""
        if not len(hashes):
            return np.zeros(0, dtype=np.int64)
        slots = np.searchsorted(self.hashes, hashes)
        free = ~self.owned[slots]
        if free.any():  # a slot belongs to the first content seen with it (np.unique: first index)
            unowned, first = np.unique(slots[free], return_index=True)
            self.owner[unowned] = keys[free][first]
            self.owned[unowned] = True
        numbers = np.zeros(len(slots), dtype=np.int64)
        mine = self.owner[slots] == keys
        numbers[mine] = self._count(slots[mine])
        for i in np.flatnonzero(~mine):  # another content with the same 64-bit hash: rare
            key = (int(slots[i]), int(keys[i]))
            numbers[i] = self.collided[key] = self.collided.get(key, 0) + 1
        return numbers

    def _count(self, slots: np.ndarray) -> np.ndarray:
        """Each row's number: its slot's count so far plus its rank among this batch's rows."""
        if not len(slots):
            return np.zeros(0, dtype=np.int64)
        order = np.argsort(slots, kind="stable")
        ordered = slots[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        sizes = np.diff(np.r_[starts, len(ordered)])
        rank = np.arange(len(ordered)) - np.repeat(starts, sizes)
        numbers = np.empty(len(slots), dtype=np.int64)
        numbers[order] = self.counts[ordered].astype(np.int64) + rank + 1
        self.counts[ordered[starts]] += sizes.astype(np.uint32)  # each slot once: no np.add.at needed
        return numbers


def _numbered_by_window(con: Any, relation: str, content: str, quoted: str,
                        batch_rows: int) -> Iterator[pl.DataFrame]:
    """Only rows whose content's 64-bit hash repeats go through the window that numbers
    occurrences, a narrow query sorted by position; every other row streams in scan order,
    which DuckDB keeps under ``preserve_insertion_order``. So no query sorts the whole, wide
    table."""
    later = cursor(con)  # a second result stream needs its own connection to the database
    later.execute("SET preserve_insertion_order=true")
    repeats = _Positions(stream(later, f"""
        WITH hashed AS NOT MATERIALIZED (
            SELECT _file, _row, {content} AS _content, hash({content}) AS _hash FROM {relation}
        ), repeated AS (
            SELECT _hash FROM hashed GROUP BY _hash HAVING count(*) > 1
        ), numbered AS (
            SELECT _file, _row, _content,
                   row_number() OVER (PARTITION BY _content ORDER BY _file, _row) AS _occurrence
            FROM hashed SEMI JOIN repeated USING (_hash)
        )
        SELECT _file, _row, substr(md5(_content || chr(29) || _occurrence::VARCHAR), 1, {UID_DIGITS}) AS {LATER_UID}
        FROM numbered WHERE _occurrence > 1 ORDER BY _file, _row
    """, batch_rows))
    order = _SourceOrder()
    try:
        rows = stream(con, f"SELECT _file, _row, substr(md5({content}), 1, {UID_DIGITS}) AS uid, {quoted} "
                             f"FROM {relation}",
                      batch_rows)
        for frame in rows:
            position = _position(frame)
            order.check(position)
            patches = repeats.until(position[-1])
            if patches.height:
                index = position.search_sorted(patches["_position"])
                if not bool((position.gather(index) == patches["_position"]).all()):
                    raise SourceError("internal error: a repeated row was not where the source order puts it",
                                      "please report this with your DuckDB version")
                frame = frame.with_columns(frame[UID].scatter(index, patches[LATER_UID]))
            yield frame.drop("_file", "_row")
        repeats.finish()
    finally:
        later.close()


class _SourceOrder:
    """Raises unless the frames' positions strictly increase: numbering relies on it."""

    def __init__(self) -> None:
        self.previous = -1

    def check(self, position: pl.Series) -> None:
        if position[0] <= self.previous or not bool((position.diff().drop_nulls() > 0).all()):
            raise SourceError("internal error: the source rows did not stream in order",
                              "please report this with your DuckDB version")
        self.previous = position[-1]


def _position(frame: pl.DataFrame) -> pl.Series:
    """One increasing integer for (_file, _row), the source order."""
    return frame.select(pl.col("_file").cast(pl.Int64) * 2**40 + pl.col("_row")).to_series().alias("_position")


class _Positions:
    """A stream of rows sorted by (_file, _row), taken in order up to a position."""

    def __init__(self, frames: Iterator[pl.DataFrame]):
        self.frames = frames
        self.pending: pl.DataFrame | None = None

    def _next(self) -> pl.DataFrame | None:
        frame = next(self.frames, None)
        return None if frame is None else frame.with_columns(_position(frame)).drop("_file", "_row")

    def until(self, last: int) -> pl.DataFrame:
        parts = []
        while True:
            if self.pending is None or self.pending.height == 0:
                self.pending = self._next()
                if self.pending is None:
                    break
            count = int((self.pending["_position"] <= last).sum())
            parts.append(self.pending.head(count))
            self.pending = self.pending.slice(count)
            if self.pending.height:
                break
        if not parts:
            return pl.DataFrame(schema={LATER_UID: pl.Utf8, "_position": pl.Int64})
        return pl.concat(parts)

    def finish(self) -> None:
        left = (self.pending.height if self.pending is not None else 0) + sum(f.height for f in self.frames)
        if left:
            raise SourceError(f"internal error: {left} repeated rows were not found in the source",
                              "please report this with your DuckDB version")


def check_distinct(con: Any, files: list[Path], rows: int, uid_columns: tuple[str, ...]) -> None:
    """Raise a SourceError when two of the derived uids stored in ``files`` are one (an md5
    prefix shared by two contents); checked only from ``CHECKED_FROM_ROWS`` rows."""
    if rows < CHECKED_FROM_ROWS or not files:
        return
    paths = ", ".join(literal(f.as_posix()) for f in files)
    shared = con.sql(f"SELECT uid, count(*) AS n FROM read_parquet([{paths}]) GROUP BY uid HAVING n > 1 "
                     "ORDER BY uid LIMIT 3").fetchall()
    if shared:
        names = ", ".join(f"{uid!r} ({n} rows)" for uid, n in shared)
        raise SourceError(
            f"rows of different content got one uid: {names}. A derived uid is {UID_DIGITS * 4} bits of "
            f"the md5 of the source's {', '.join(uid_columns)} (source.uid_columns), and over {rows:,} rows "
            "two contents can share one, rarely",
            "add a column that tells the rows apart to source.uid_columns, or give the source a 'uid' "
            "column of unique ids; lineage needs one uid per row",
        )
