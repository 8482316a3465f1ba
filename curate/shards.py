"""Running one step over one shard, and writing shards atomically.

Executors call :func:`run_shard_task`; it is a plain function of (step, task, context) so it can
run in-process, in a worker process or in a Ray actor with the same result.
"""

from __future__ import annotations

import io
import json
import time
import zlib
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from curate.atomic import atomic_path, write_text_atomic
from curate.diskspace import check_free
from curate.errors import CurateError, StepError, reported
from curate.runfiles import open_regular, read_json
from curate.shapes import shard_marker_problem
from curate.storedimages import images_problem, referenced_files, remove_damaged
from curate.schema import DROP_REASON, DUPLICATE_OF, UID, Schema, dtype_name, restorable
from curate.step import Step, StepContext

# zstd's fastest level: every step writes each shard once (kept and dropped), so the writer's CPU
# is paid on every row of every step; level 1 writes in ~60% of the time of the default level
# for files ~10% larger (bench_metadata). Outputs for training keep the sinks' own settings.
# A source fused with the steps after it and read in place stores, instead of its rows, this
# file: the SQL reading its files (with ``_file``, ``_row``) and whether ``uids/`` holds the uids.
KEPT_REFERENCE = "kept.json"

PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 1, "statistics": True}


@dataclass(frozen=True)
class ShardTask:
    index: int
    input: Path
    output_dir: Path  # the step's store directory

    @property
    def name(self) -> str:
        return f"shard-{self.index:05d}.parquet"

    @property
    def output(self) -> Path:
        return self.output_dir / "data" / self.name

    @property
    def dropped(self) -> Path:
        return self.output_dir / "dropped" / self.name

    @property
    def marker(self) -> Path:
        return self.output_dir / "shards" / f"{self.index:05d}.json"


@dataclass
class ShardStats:
    index: int
    rows_in: int
    rows_out: int
    dropped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    # A fused group's shard (curate.fusion): each member's label, rows in/out, drops, seconds and
    # files (its own, in its store directory).
    members: list[dict] | None = None
    # The shard's files in the marker's store directory (kept and dropped rows), by path relative
    # to it: their :func:`file_fingerprint` when written. None: a marker from before fingerprints.
    files: dict[str, str] | None = None
    # The image files the shard's rows point at in the step's own folder (a download's tars), by
    # path relative to it: their size when written (curate.storedimages). None: none, or a marker
    # from before they were recorded.
    images: dict[str, str] | None = None
    # Why a marker found for this shard was not trusted (its files disagreed with it), when the
    # shard was recomputed for that reason; said by the engine, never written to the marker.
    redone: str | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        del data["redone"]
        if self.members is None:  # a lone step's marker reads as it always did
            del data["members"]
        if self.images is None:
            del data["images"]
        return data

    @classmethod
    def from_json(cls, data: Any) -> ShardStats:
        """A marker read back; ``ValueError`` when it is not one curate wrote (its shard is redone:
        a count that is text stopped the run, summing it, on an internal error)."""
        problem = shard_marker_problem(data)
        if problem:
            raise ValueError(f"it is damaged: {problem}")
        return cls(**data)


def write_parquet_atomic(frame: pl.DataFrame, path: Path) -> None:
    """Write to a temporary name and rename, so a crash never leaves a half-written shard."""
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp, **PARQUET_OPTIONS)


def write_shard(frame: pl.DataFrame, path: Path) -> str:
    """:func:`write_parquet_atomic` for a stored shard; returns its :func:`file_fingerprint`, for
    its marker (read back while the file is still in the page cache, before the rename)."""
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp, **PARQUET_OPTIONS)
        fingerprint = file_fingerprint(tmp)
    return fingerprint


def file_fingerprint(path: Path) -> str:
    """A stored file's size and CRC-32 of its bytes, as text: what markers record and reuse checks.

    Row counts alone let a shard rewritten with as many rows (tampered, copied from another run,
    bit-rot that still parses) be reused. A hash of the Parquet footer alone (its offsets, sizes
    and statistics) missed ~30 % of single-value edits rewritten with the same settings, where
    every page compresses to the same size. CRC-32 reads 3.4 GB/s here (zlib, GIL released),
    twice SHA-256's speed: the 1M-row metadata benchmark stores 100 MB and spends 30-50 ms of its
    ~7 s of CPU fingerprinting it (as much again to check it on a cached run), and it catches
    every burst of up to 32 flipped bits. Stores are not defended against an adversary, who could
    rewrite the markers as well."""
    crc, size = 0, 0
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    with open_regular(path) as handle:  # a pipe put in a shard's place is not waited on
        while read := handle.readinto(buffer):
            crc = zlib.crc32(view[:read], crc)
            size += read
    return f"{size} bytes, crc32 {crc:08x}"


def fingerprint_size(fingerprint: Any) -> int | None:
    """The size in a fingerprint ``file_fingerprint`` wrote (``"1234 bytes, crc32 …"``), or None."""
    head = str(fingerprint).split(" ", 1)[0]
    return int(head) if head.isdigit() else None


def files_problem(base: Path, recorded: dict[str, str], paths: Iterable[Path],
                  sizes_only: bool = False) -> str | None:
    """None when each of ``paths`` is the file its marker recorded (``recorded``: fingerprints by
    path relative to ``base``), else which one is not, and how. ``sizes_only``: one ``stat`` per
    file against the recorded size instead of reading every byte (``curate inspect``)."""
    for path in paths:
        key = relative(path, base)
        if key not in recorded:
            return f"{path} is not among the files its marker recorded"
        if not path.is_file():
            return f"{path}, which its marker recorded, is missing"
        if sizes_only:
            size, expected = path.stat().st_size, fingerprint_size(recorded[key])
            if expected is not None and size != expected:
                return f"{path} holds {size:,} bytes, its marker recorded {expected:,}"
            continue
        actual = file_fingerprint(path)
        if actual != recorded[key]:
            return f"{path} is not the file its marker recorded (now {actual}; recorded {recorded[key]})"
    return None


def write_json_atomic(data: dict, path: Path) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str))


PLUGIN_BUG = "this is a bug in the step's plugin"


def step_frame(step: Step, result: Any, shard: int | None, method: str = "process_shard") -> pl.DataFrame:
    """``result``, what a step's ``method`` gave, when it is what the engine takes: a polars
    DataFrame whose ``_drop_reason`` (if any) is text, null on kept rows and a reason on dropped
    ones. Else a StepError naming the step, the shard and the mistake (a missing ``return``, a
    LazyFrame not collected, a reason that is a number or empty), not an internal error later."""
    if not isinstance(result, pl.DataFrame):
        if result is None:
            why = f"{method}() returned None, not a polars DataFrame (a missing return?)"
        elif isinstance(result, pl.LazyFrame):
            why = f"{method}() returned a LazyFrame: collect it (.collect()) and return the DataFrame"
        else:
            why = f"{method}() returned {type(result).__name__}, not a polars DataFrame"
        raise StepError(step.label, shard, why, hint=PLUGIN_BUG)
    if DROP_REASON in result.columns:
        dtype = result.schema[DROP_REASON]
        if dtype not in (pl.Utf8, pl.Null):
            raise StepError(step.label, shard, f"its '{DROP_REASON}' column is {dtype_name(dtype)}: it must be text, "
                            "the reason each dropped row was dropped (null on the rows kept)", hint=PLUGIN_BUG)
        empty = result.select((pl.col(DROP_REASON).str.strip_chars() == "").sum()).item() if dtype == pl.Utf8 else 0
        if empty:
            raise StepError(step.label, shard, f"{empty} rows have an empty '{DROP_REASON}': give each dropped row "
                            "its reason (null keeps a row)", hint=PLUGIN_BUG)
    return result


def table_frames(step: Step, result: Any) -> Iterable[pl.DataFrame]:
    """The frames a table step's ``process_table`` yields, each checked by :func:`step_frame`; a
    result that is one frame, or nothing, is named (``yield`` the frames, or return a list)."""
    if result is None or isinstance(result, pl.DataFrame | pl.LazyFrame):
        what = "None" if result is None else f"a {type(result).__name__}"
        raise StepError(step.label, None, f"process_table() returned {what}: it must yield the step's frames "
                        "(yield frame), or return a list of them", hint=PLUGIN_BUG)
    for frame in result:
        yield step_frame(step, frame, None, "process_table")


def split_dropped(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Separate kept rows from rows a step marked with ``_drop_reason``."""
    if DROP_REASON not in frame.columns:
        kept = frame.drop([c for c in (DUPLICATE_OF,) if c in frame.columns])
        return kept, kept.clear().with_columns(pl.lit(None, pl.Utf8).alias(DROP_REASON))
    mask = frame[DROP_REASON].is_null()
    kept = frame.filter(mask).drop([c for c in (DROP_REASON, DUPLICATE_OF) if c in frame.columns])
    dropped = frame.filter(~mask)
    return kept, dropped


def restored(dropped: pl.DataFrame, schema: Schema | None) -> pl.DataFrame:
    """Dropped rows with the types of ``schema`` (the step's, which their columns had on the way
    in) where DuckDB handed them back in its own (:func:`curate.schema.restorable`): a table step
    streaming rows through DuckDB stored its dropped millisecond timestamps as microseconds, Paris
    times as UTC, arrays as lists, and the lineage showed other types than the table."""
    if not schema or not dropped.width:
        return dropped
    casts = [pl.col(n).cast(schema[n], strict=True) for n, d in dropped.schema.items()
             if n in schema and d != schema[n] and schema[n] != pl.Null and restorable(d, schema[n])]
    if not casts:
        return dropped
    try:
        return dropped.with_columns(casts)
    except pl.exceptions.PolarsError:  # values that do not fit: stored as they came, not lost
        return dropped


def compacted(part: pl.DataFrame, parent_rows: int) -> pl.DataFrame:
    """``part`` (rows filtered out of a frame of ``parent_rows``) with buffers of its own.

    A filtered frame's text columns are views into its parent's buffers, so a small part held
    for later (a writer's pending rows) keeps the whole parent alive: a step that drops 3 % of
    each 100k-row shard held every shard's text until 100k dropped rows had gathered (the
    metadata_balance run's RSS grew 170 bytes per input row). A part under half its parent is
    copied through Arrow IPC in memory (values and dtypes unchanged); larger parts are kept as
    they are (at most twice their size, and copying them would cost more than it saves)."""
    if part.height * 2 >= parent_rows or part.height == 0:
        return part
    buffer = io.BytesIO()
    part.write_ipc(buffer, compression="uncompressed")
    buffer.seek(0)
    return pl.read_ipc(buffer)


def drop_counts(dropped: pl.DataFrame) -> dict[str, int]:
    if dropped.height == 0 or DROP_REASON not in dropped.columns:
        return {}
    counts = dropped.group_by(DROP_REASON).len().sort(DROP_REASON)
    return {row[0]: int(row[1]) for row in counts.iter_rows()}


def check_output(step: Step, frame: pl.DataFrame, expected: Schema, shard: int | None) -> pl.DataFrame:
    """Declared writes must be present with the declared type; column order follows the plan."""
    problems = []
    # the frame's schema once: Polars builds it anew on each .schema (and .columns is a list), so
    # asking per column took O(columns²): 3,000 columns of 10 rows ran 50 s (a hostile-tables probe)
    schema = frame.schema
    if UID not in schema:
        problems.append("the output lost the 'uid' column")
    writes = step.output_columns()
    for name, dtype in expected.items():
        if name not in schema and name not in writes:
            problems.append(f"input column '{name}' is missing from the output (a step that removes columns says "
                            "so in output_schema(), and the plan checks the steps after it)")
        elif name not in schema:
            problems.append(f"declared column '{name}' is missing from the output")
        elif not restorable(schema[name], dtype):  # what DuckDB changes is cast back below
            problems.append(
                f"column '{name}' is {dtype_name(schema[name])}, the plan says {dtype_name(dtype)}"
            )
    # Exactly the planned columns: a frame that also carries dropped rows is often a diagonal
    # concat (sql per_shard keeps the input columns on rows the query left out), and passing
    # such columns through gave kept shards columns the plan does not know, differing by shard.
    # Such columns are null on the kept rows; one with values there is a write the step forgot
    # to declare, and would be lost without a word.
    extra = [n for n in schema if n not in expected and n not in (DROP_REASON, DUPLICATE_OF)]
    if extra and frame.height:
        counts = frame.select(pl.col(extra).is_not_null().sum()).row(0)
        problems += [f"column '{name}' holds values but is not among the step's declared columns (add it to "
                     "writes / output_columns(), or drop it before returning)"
                     for name, count in zip(extra, counts, strict=True) if count]
    if problems:
        raise StepError(step.label, shard, "; ".join(problems), hint=PLUGIN_BUG)
    out = frame.select(list(expected))
    casts = {n: d for n, d in expected.items() if schema[n] != d and d != pl.Null}
    if casts:
        try:
            out = out.with_columns([pl.col(n).cast(d, strict=True) for n, d in casts.items()])
        except pl.exceptions.PolarsError as exc:  # e.g. a UInt64 past Int64's range: never a silent null
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            named = ", ".join(f"'{n}' ({dtype_name(schema[n])} → {dtype_name(d)})" for n, d in casts.items())
            raise StepError(step.label, shard, f"column {named} holds values that do not fit the planned type "
                            f"({first})", hint=PLUGIN_BUG) from exc
    return out


def parquet_rows(path: Path) -> int:
    """Rows of a Parquet file from its footer (no data read); an error names the file."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception as exc:
        raise OSError(f"{path} cannot be read as Parquet ({type(exc).__name__}: {exc})") from exc


def finished_shard(task: ShardTask) -> tuple[ShardStats | None, str | None]:
    """(the shard's recorded stats, None) when its marker and files agree: each file's
    fingerprint (a marker written before fingerprints is trusted on its row counts) and row
    counts from the Parquet footers. Else (None, why not): a marker beside a missing, shorter or
    different file is not a finished shard. (None, None): no marker."""
    if not task.marker.exists():
        return None, None
    try:
        stats = ShardStats.from_json(read_json(task.marker))
        if stats.files is not None:
            problem = files_problem(task.output_dir, stats.files, (task.output, task.dropped))
            if problem:
                return None, problem
        if stats.images:
            problem = images_problem(task.output_dir, stats.images)
            if problem:
                return None, problem
        rows, dropped = parquet_rows(task.output), parquet_rows(task.dropped)
        if rows != stats.rows_out:
            return None, f"its marker says {stats.rows_out} rows out, {task.output} holds {rows}"
        if dropped != sum(stats.dropped.values()):
            return None, (f"its marker says {sum(stats.dropped.values())} dropped rows, {task.dropped} "
                          f"holds {dropped}")
    except Exception as exc:  # an unreadable marker or file: the shard is redone
        return None, f"its marker or files are unreadable ({type(exc).__name__}: {exc})"
    return stats, None


def check_nothing_lost(step: Step, shard: int | None, inputs: pl.LazyFrame, outputs: pl.LazyFrame) -> None:
    """Every input uid comes out exactly once, kept or dropped with a reason, and no other uid does.

    A step that returned fewer rows without ``_drop_reason`` made rows vanish from the lineage;
    one that invented uids made rows appear from nowhere. The common case costs a row count and
    a sum of uid hashes on each side (1.8 s for 10M uids, where two anti-joins took 49 s); only
    when they differ are the uids compared to say which."""
    def digest(frame: pl.LazyFrame) -> pl.LazyFrame:
        return frame.select(pl.len().alias("rows"), pl.col(UID).cast(pl.Utf8).hash().sum().alias("hash"))

    before, after = pl.collect_all([digest(inputs), digest(outputs)])
    if before.row(0) == after.row(0):
        return
    inp = inputs.select(pl.col(UID).cast(pl.Utf8)).drop_nulls()
    out = outputs.select(pl.col(UID).cast(pl.Utf8))
    lost, invented, repeated, nulls = pl.collect_all([
        inp.unique().join(out.drop_nulls().unique(), on=UID, how="anti"),
        out.drop_nulls().unique().join(inp.unique(), on=UID, how="anti"),
        out.drop_nulls().group_by(UID).len().filter(pl.col("len") > 1).select(UID),
        out.filter(pl.col(UID).is_null()).select(pl.len()),
    ])
    null_uids = nulls.item()
    said = step.lineage_problem(lost.height, invented.height + null_uids, repeated.height,
                                str(invented[UID].sort()[0]) if invented.height else None)
    if said is not None:
        raise StepError(step.label, shard, said[0], hint=said[1])
    problems = []
    if lost.height:
        problems.append(f"{lost.height} input row{'s' if lost.height != 1 else ''} came out neither kept nor "
                        f"dropped with a reason (uids {_examples(lost)})")
    if invented.height:
        problems.append(f"{invented.height} output row{'s' if invented.height != 1 else ''} have uids that were "
                        f"not in its input (uids {_examples(invented)})")
    if repeated.height:
        problems.append(f"{repeated.height} uid{'s' if repeated.height != 1 else ''} came out more than once "
                        f"(uids {_examples(repeated)})")
    if null_uids:
        problems.append(f"{null_uids} output row{'s' if null_uids != 1 else ''} have no uid (null)")
    if problems:
        raise StepError(step.label, shard, "; ".join(problems),
                        hint="a step returns every row it was given, once, with its uid: to drop a row, set "
                             "its '_drop_reason' (the engine keeps it in the step's dropped table); this is a "
                             "bug in the step's plugin")


def uids_of(parts: list[pl.DataFrame] | list[Path]) -> pl.LazyFrame:
    """The uid column of frames or Parquet files, as one lazy frame (each part cast to text)."""
    frames = [(pl.scan_parquet(p) if isinstance(p, Path) else p.lazy()).select(pl.col(UID).cast(pl.Utf8))
              for p in parts]
    return pl.concat(frames) if frames else pl.LazyFrame(schema={UID: pl.Utf8})


def _examples(frame: pl.DataFrame, count: int = 3) -> str:
    shown = ", ".join(str(u) for u in frame[UID].sort().head(count))
    return shown + (", …" if frame.height > count else "")


def run_shard_task(step: Step, task: ShardTask, ctx: StepContext, expected: Schema) -> ShardStats:
    """Process one shard and record it done. Idempotent: a marker that its files agree with means done."""
    from curate.fusion import FusedSteps, run_fused_task

    if isinstance(step, FusedSteps):
        return run_fused_task(step, task, ctx, expected)
    done, redone = finished_shard(task)
    if done is not None:
        return done
    if redone is not None:  # images it recorded and lost: stored anew, not found cut short
        try:
            remove_damaged(task.output_dir, read_json(task.marker))
        except (OSError, ValueError):
            pass
    started = time.perf_counter()
    table = pl.read_parquet(task.input)
    ctx.shard = task.index
    try:
        result = step.process_shard(table, ctx)
    except CurateError:
        raise
    except BaseException as exc:  # a plugin's bug: name the step and shard, keep the cause
        if not reported(exc):
            raise
        raise StepError.from_exception(step.label, task.index, exc) from exc
    kept, dropped = split_dropped(step_frame(step, result, task.index))
    kept = check_output(step, kept, expected, task.index)
    check_nothing_lost(step, task.index, table.lazy(), uids_of([kept, dropped]))
    check_free(task.output_dir, ctx.min_free_disk, f"step '{step.label}' before storing shard {task.index}")
    files = {relative(task.output, task.output_dir): write_shard(kept, task.output),
             relative(task.dropped, task.output_dir): write_shard(restored(dropped, expected), task.dropped)}
    images = referenced_files((kept, dropped), task.output_dir, ctx.extras.get("store_dir") or ctx.run_dir)
    stats = ShardStats(
        index=task.index,
        rows_in=table.height,
        rows_out=kept.height,
        dropped=drop_counts(dropped),
        seconds=round(time.perf_counter() - started, 4),
        files=files,
        images=images or None,
    )
    write_json_atomic(stats.to_json(), task.marker)
    stats.redone = redone
    return stats


def relative(path: Path, base: Path) -> str:
    """How a marker names a stored file: its path under the step's store directory."""
    return path.relative_to(base).as_posix()


class ShardWriter:
    """Re-shards a stream of frames into fixed-size shards (table-scope steps, sources)."""

    def __init__(self, step: Step | None, output_dir: Path, shard_size: int, expected: Schema | None,
                 kept_sink: Any = None, store_kept: bool | None = None, keep_uids: bool = False,
                 min_free_disk: int = 0):
        self.step = step
        self.min_free_disk = min_free_disk  # bytes left free on the disk: no shard is written past it
        # kept_sink(index, frame): where each kept shard goes (a fused group headed by this source
        # or table step streams it into the shard steps after it); then it is stored in ``data/``
        # only with ``store_kept``, and with ``keep_uids`` its uid column alone goes to ``uids/``.
        self.kept_sink = kept_sink
        self.store_kept = kept_sink is None if store_kept is None else store_kept
        self.keep_uids = keep_uids
        self.output_dir = output_dir
        self.shard_size = shard_size
        self.expected = expected
        self.pending: list[pl.DataFrame] = []
        self.pending_rows = 0
        self.pending_dropped: list[pl.DataFrame] = []
        self.index = 0
        self.rows_out = 0
        self.rows_in = 0
        self.dropped: dict[str, int] = {}
        self.dropped_rows = 0
        self.dropped_index = 0
        self._writes = _BackgroundWrites()

    @property
    def files(self) -> dict[str, str]:
        """Every file written so far (complete after :meth:`close`): its fingerprint by its path
        under ``output_dir``, for the step's marker."""
        return {relative(path, self.output_dir): fingerprint
                for path, fingerprint in self._writes.written.items()}

    def add(self, frame: pl.DataFrame) -> None:
        kept, dropped = split_dropped(frame)
        self.rows_in += frame.height
        if dropped.height:
            self.pending_dropped.append(compacted(dropped, frame.height))
            self.dropped_rows += dropped.height
            if self.dropped_rows >= self.shard_size:
                self._flush_dropped()
            for reason, count in drop_counts(dropped).items():
                self.dropped[reason] = self.dropped.get(reason, 0) + count
        if kept.height:
            self.pending.append(compacted(kept, frame.height))
            self.pending_rows += kept.height
        while self.pending_rows >= self.shard_size:
            self._flush(self.shard_size)

    def _flush(self, rows: int) -> None:
        data = pl.concat(self.pending, how="vertical_relaxed") if self.pending else None
        if data is None or data.height == 0:
            return
        head, tail = data.head(rows), data.slice(rows)
        if self.expected is not None and self.step is not None:
            head = check_output(self.step, head, self.expected, self.index)
        task = ShardTask(self.index, Path(), self.output_dir)
        self._check_free(f"shard {self.index}")
        if self.kept_sink is not None:
            self.kept_sink(self.index, head)
        if self.store_kept:
            self._writes.submit(head, task.output)
        elif self.keep_uids:
            self._writes.submit(head.select(UID), self.output_dir / "uids" / task.name)
        self.rows_out += head.height
        self.index += 1
        self.pending = [tail] if tail.height else []
        self.pending_rows = tail.height

    def _check_free(self, what: str) -> None:
        label = self.step.label if self.step is not None else "source"
        check_free(self.output_dir, self.min_free_disk, f"step '{label}' before storing {what}")

    def _flush_dropped(self) -> None:
        self._check_free(f"dropped rows {self.dropped_index}")
        path = self.output_dir / "dropped" / f"shard-{self.dropped_index:05d}.parquet"
        self._writes.submit(restored(pl.concat(self.pending_dropped, how="diagonal_relaxed"), self.expected), path)
        self.dropped_index += 1
        self.pending_dropped = []
        self.dropped_rows = 0

    def close(self, empty_schema: Schema | None = None) -> int:
        """Flush what is left; always write at least one (possibly empty) shard. Returns shards."""
        if self.pending_rows:
            self._flush(self.pending_rows)
        if self.index == 0:
            schema = empty_schema or (self.expected or {})
            empty, task = pl.DataFrame(schema=schema), ShardTask(0, Path(), self.output_dir)
            if self.kept_sink is not None:
                self.kept_sink(0, empty)
            if self.store_kept:
                self._writes.submit(empty, task.output)
            elif self.keep_uids:
                self._writes.submit(empty.select(UID), self.output_dir / "uids" / task.name)
            self.index = 1
        if self.pending_dropped:
            self._flush_dropped()
        if self.dropped_index == 0:
            empty = pl.DataFrame(schema={UID: pl.Utf8, DROP_REASON: pl.Utf8})
            self._writes.submit(empty, self.output_dir / "dropped" / "shard-00000.parquet")
        self._writes.wait()
        return self.index


class _BackgroundWrites:
    """Shard writes on one background thread, so the next shard is computed (a DuckDB stream,
    a step's frames) while the last one is compressed and written: the Parquet writer is a
    third of a table step's time. At most ``LIMIT`` frames wait, which bounds the memory."""

    LIMIT = 2

    def __init__(self) -> None:
        self.pool: ThreadPoolExecutor | None = None
        self.pending: list[tuple[Path, Future]] = []
        self.written: dict[Path, str] = {}  # each finished file's fingerprint

    def submit(self, frame: pl.DataFrame, path: Path) -> None:
        if self.pool is None:
            self.pool = ThreadPoolExecutor(1, thread_name_prefix="curate-shard-writer")
        while len(self.pending) >= self.LIMIT:
            self._collect()  # raises the write's error here, in the caller
        self.pending.append((path, self.pool.submit(write_shard, frame, path)))

    def _collect(self) -> None:
        path, future = self.pending.pop(0)
        self.written[path] = future.result()

    def wait(self) -> None:
        try:
            while self.pending:
                self._collect()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
                self.pool = None


def in_shard_order(paths: Iterable[Path]) -> list[Path]:
    """Shard files (``shard-00042.parquet``…) in their index order: the index is written with at
    least five digits, so from shard 100,000 on a name is longer, and sorted as text
    ``shard-100000`` came before ``shard-10001`` (rows read out of order past 10^10 rows, or 10^8
    with ``shard_size: 1000``). Shorter names first, then as text."""
    return sorted(paths, key=lambda path: (len(path.name), path.name))


def iter_shard_files(step_dir: Path) -> list[Path]:
    return in_shard_order((step_dir / "data").glob("shard-*.parquet"))


def iter_dropped_files(step_dir: Path) -> Iterable[Path]:
    return in_shard_order((step_dir / "dropped").glob("shard-*.parquet"))
