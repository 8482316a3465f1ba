"""Turning a source into the first step's table: canonical columns, a stable uid, fixed shards.

The uid is a hash of the row's content (``url`` and ``alt_text`` by default). Rows with identical
content are told apart by their occurrence number in source order, so uids are unique, stable
across re-runs and independent of shard size.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from curate.display import visible_name
from curate.duck import literal, memory_bytes, quote, stream
from curate.errors import CurateError, SourceError, disk_full
from curate.footers import ArrowFooter, arrow_footer, polars_schema
from curate.keptref import KeptReference, file_version
from curate.parquet_nan import read_option
from curate.runfiles import remove_tree
from curate.schema import ALT_TEXT, UID, URL, Schema, case_clashes, dtype_name, unsupported_column
from curate.shards import (
    KEPT_REFERENCE,
    ShardWriter,
    file_fingerprint,
    in_shard_order,
    write_json_atomic,
    write_parquet_atomic,
)
from curate.source import Source
from curate.spec import SourceSpec
from curate.step import StepContext
from curate.uids import BYTES_PER_REPEAT, Content, check_distinct, derived_uids
from curate.unpacked import decimal_size, holds_text, machine_memory, unpacked_shard_problem

logger = logging.getLogger(__name__)

REQUIRED = (URL, ALT_TEXT)
MAX_COLUMNS = 20_000
# The staged copy lives only until the source's shards are written: a fast codec (lz4) rather
# than the default zstd, which spent a third of the staging time compressing.
STAGING_COMPRESSION = "lz4"
HIDDEN = ("_file", "_row")


def _names(raw: Schema) -> str:
    """The source's column names for a message, each as typed (a name holding U+200B or a
    no-break space shows it as an escape)."""
    return ", ".join(map(visible_name, raw)) or "none"


def carried_columns(spec: SourceSpec) -> frozenset[str] | None:
    """The source columns a run reads when ``source.keep`` names the extra ones: the mapped
    columns, url, alt_text and uid (a source's own uid is read whatever keep says), and the kept
    ones; None without ``keep`` (every column is carried)."""
    if spec.keep is None:
        return None
    mapping = dict(spec.columns)
    return frozenset({*mapping.values(), *(mapping.get(c, c) for c in (*REQUIRED, UID)), *spec.keep})


def canonical_schema(raw: Schema, spec: SourceSpec) -> tuple[Schema, list[tuple[tuple, str, str | None]]]:
    """The table's schema after mapping; problems as (loc, message, hint)."""
    problems: list[tuple[tuple, str, str | None]] = []
    mapping = dict(spec.columns)  # canonical → source
    for canonical, column in mapping.items():
        if column not in raw:
            problems.append((("source", "columns", canonical), f"the source has no column '{visible_name(column)}'",
                             f"source columns: {_names(raw)}"))
    mapped_sources = set(mapping.values())
    schema: Schema = {}
    for canonical in REQUIRED:
        column = mapping.get(canonical, canonical)
        if column in raw:
            # An all-null column written without a type (Parquet's Null) is still text: steps
            # reading url or alt_text as text failed on it ("expected String type, got: null").
            schema[canonical] = pl.Utf8 if raw[column] == pl.Null else raw[column]
        elif canonical not in mapping:
            problems.append((("source", "columns"), f"the source has no '{canonical}' column",
                             f"map one: columns: {{{canonical}: <source column>}}; source columns: "
                             f"{_names(raw)}"))
    for canonical, column in mapping.items():
        if canonical not in REQUIRED and column in raw:
            schema[canonical] = raw[column]
    # A NUL in a column name: Polars panics handing such a table to DuckDB (the spec's first
    # `where` failed with "PanicException … NulError"); a CSV in UTF-16 read as UTF-8 has them
    # between the letters of every name.
    for column in [c for c in raw if "\x00" in c and (spec.keep is None or c in spec.keep)]:
        problems.append((("source",), f"column {column!r} has a NUL character in its name, which DuckDB and Polars "
                         "cannot carry", "rename it in the file, or list the columns to carry with source.keep (a CSV whose "
                         "names show \\x00 between their letters is UTF-16: source.params.encoding: utf-16)"))
    extras = [c for c in raw if c not in mapped_sources and c not in schema and "\x00" not in c]
    if spec.keep is not None:
        for column in spec.keep:
            if column not in raw:
                problems.append((("source", "keep"), f"the source has no column '{visible_name(column)}' to keep",
                                 f"source columns: {_names(raw)}"))
        extras = [c for c in extras if c in spec.keep]
    for column in extras:
        schema[column] = raw[column]
    for column in spec.uid_columns:
        # A missing url/alt_text was reported above with how to map it; saying it again here
        # would only double the list.
        if column not in schema and column not in REQUIRED:
            problems.append((("source", "uid_columns"), f"uid column '{column}' is not in the table",
                             f"columns: {', '.join(schema)}"))
    for first, second in case_clashes(schema):
        problems.append((("source",), f"columns '{first}' and '{second}' differ only by case; DuckDB treats them "
                         "as one", f"rename one with source.columns ({{{second.lower()}_2: {second}}}), "
                         "or leave it out with source.keep"))
    if len(schema) > MAX_COLUMNS:  # a header of 1M names: validate took 17 s, the run over 700 s and 5 GB
        problems.append((("source",), f"the source carries {len(schema):,} columns, more than curate carries "
                         f"({MAX_COLUMNS:,})", "carry only the columns the run needs with source.keep: [col, …] (or "
                         "store a vector as one list column)"))
        schema = {c: d for c, d in schema.items() if c in REQUIRED or c in mapping}  # said once: not bound again
    while (unsupported := unsupported_column(schema)) is not None:
        column, what, fix = unsupported  # the run stopped in the source with an internal error
        problems.append((("source",), f"column '{column}' {what}, which curate cannot carry through its steps",
                         f"{fix}; or leave it out with source.keep"))
        if column in REQUIRED:
            break
        del schema[column]  # said once: the steps bound to it failed on it again ("format string '_pli128'")
    for column in schema:
        if not column.strip():
            problems.append((("source",), f"a column's name is {'empty' if not column else 'blank'} ({column!r}): "
                             "SQL cannot name it", "rename it with source.columns, or leave it out with source.keep"))
        elif column.startswith("_"):
            problems.append((("source",), f"column '{column}' starts with '_', reserved for curate",
                             "rename it with source.columns"))
    # uid is always text and always first, also when mapped from a source column of another type
    # (`columns: {uid: id}` with integer ids kept Int64, which every step reading uid rejected).
    # A categorical (dictionary-encoded) column is text stored once per distinct value: read as
    # text (an alt_text written as Categorical by pandas or Polars was refused by every text step,
    # and a dictionary-encoded url came out as Categorical).
    schema = {UID: pl.Utf8, **{k: pl.Utf8 if isinstance(v, (pl.Categorical, pl.Enum)) else v
                               for k, v in schema.items() if k != UID}}
    return schema, problems


def _select_expressions(raw: Schema, spec: SourceSpec, schema: Schema) -> list[pl.Expr]:
    mapping = dict(spec.columns)
    exprs = []
    for canonical in schema:
        source_column = mapping.get(canonical, canonical)
        if canonical == UID and source_column not in raw:  # curate derives it (a mapped uid is kept)
            continue
        expr = pl.col(source_column)
        if raw.get(source_column) != schema[canonical]:
            # Parts of one source must agree on types: the plan took them from the first part,
            # and DuckDB fails on mismatched parts with an internal-looking error. Strict, so a
            # value that does not fit is an error naming the part, not a silent NULL.
            expr = expr.cast(schema[canonical], strict=True)
        exprs.append(expr.alias(canonical))
    return exprs


def _missing_columns(raw: Schema, spec: SourceSpec, schema: Schema) -> list[str]:
    mapping = dict(spec.columns)
    return [mapping.get(c, c) for c in schema if c != UID and mapping.get(c, c) not in raw]


def ingest(
    source: Source,
    spec: SourceSpec,
    schema: Schema,
    out_dir: Path,
    shard_size: int,
    ctx: StepContext,
    kept_sink: Any = None,
    kept_files: Any = None,
) -> dict[str, Any]:
    """Read every source frame, add uids, write shards into ``out_dir``. Returns stats.

    With ``kept_sink`` (a fused group headed by the source, ``curate.fusion``) each shard goes to
    ``kept_sink(index, frame)`` instead of ``out_dir/data``, and ``kept_files()`` names the files
    that then hold every row (for the check that a source's own uids are unique)."""
    staging = ctx.run_dir / "tmp" / f"ingest-{out_dir.name}"
    remove_tree(staging)
    _refuse_unpacked(source, spec, schema, shard_size, ctx)
    in_place = in_place_reference(source, spec, schema)
    # the footers of the files read in place, looked up once (each lookup stats the file)
    footers = [arrow_footer(path) for path in in_place.files] if in_place is not None else []
    if in_place is not None:
        relation: str | None = in_place.relation(one_schema=_one_schema(footers))
    else:
        _warn_small_row_groups(source)
        relation = _stage(source, spec, schema, staging)
    has_uid = not in_place.uids if in_place else relation is not None and _source_has_uid(staging)
    # Fused with the steps after it, a source read in place stores no rows: the files are where
    # they lie, and ``kept.json`` says how to read them with their uids (uids/, unless the
    # source has its own); a staged source (a copy that is deleted) stores its rows as ever.
    by_reference = kept_sink is not None and in_place is not None
    writer = ShardWriter(None, out_dir, shard_size, None, kept_sink=kept_sink, store_kept=not by_reference,
                         keep_uids=by_reference and not has_uid, min_free_disk=ctx.min_free_disk)
    con = ctx.duckdb()
    if relation is not None:
        columns = [c for c in schema if c != UID]
        quoted = ", ".join(quote(c) for c in columns)
        batch_rows = min(shard_size, 100_000)
        if has_uid:
            frames = stream(con, f"SELECT uid, {quoted} FROM {relation} ORDER BY _file, _row", batch_rows)
        else:
            # a source of a shard at most is held as the writer holds a shard, and read once
            rows = _footer_rows(footers) if in_place is not None else None
            one_pass = rows is not None and rows <= shard_size
            frames = derived_uids(con, relation, Content(tuple(spec.uid_columns)), quoted, batch_rows,
                                  memory_bytes(con) // BYTES_PER_REPEAT, one_pass=one_pass)
        try:
            for frame in frames:
                writer.add(_cast(frame, schema))
                ctx.advance(frame.height)
        except (duckdb.Error, OSError) as exc:  # what a file holds (strings not UTF-8, pages cut short…)
            # DuckDB's own error, or the same through its Arrow stream (an OSError "Invalid Input
            # Error: …", when the bad value is in a column the uids' query did not read), or a
            # plain duckdb.Error on a file whose footer is fine and pages are not ("Parquet
            # metadata is corrupt", "Prefetch registered for bytes outside file"), which the
            # stream says as "Invalid Error: …" (a source read in one pass meets it there); never
            # an error of memory or of the disk
            ours = isinstance(exc, duckdb.InvalidInputException) or type(exc) is duckdb.Error \
                or str(exc).startswith(("Invalid Input Error", "Invalid Error"))
            if disk_full(exc) or isinstance(exc, duckdb.OutOfMemoryException):
                ours = False
            problem = _in_place_error(source, in_place, exc, con) if in_place is not None and ours else None
            if problem is None:
                raise
            raise problem from None
    shards = writer.close(empty_schema=schema)
    if has_uid:
        stored = kept_files() if kept_files is not None else in_shard_order((out_dir / "data").glob("*.parquet"))
        _check_unique(con, stored)
    elif relation is not None:
        holding = out_dir / ("uids" if by_reference else "data")  # stored, they hold every derived uid
        check_distinct(con, in_shard_order(holding.glob("*.parquet")), writer.rows_in, tuple(spec.uid_columns))
    con.close()
    remove_tree(staging)
    stats = {"rows_in": writer.rows_in, "rows_out": writer.rows_out, "shards": shards, "dropped": {},
             "files": writer.files}
    if kept_sink is not None:
        stats["kept_rows_stored"] = not by_reference
    if by_reference:
        assert in_place is not None
        write_json_atomic(in_place.to_json(), out_dir / KEPT_REFERENCE)
        stats["files"][KEPT_REFERENCE] = file_fingerprint(out_dir / KEPT_REFERENCE)
        stats["kept_rows_stored"] = False
    return stats


def in_place_reference(source: Source, spec: SourceSpec, schema: Schema) -> KeptReference | None:
    """How to read a Parquet source where it lies, with the staged copy's columns (``_file``,
    ``_row`` and the canonical ones; ``uids`` when curate derives them); None when a file needs
    what staging does (a cast, or a column is missing: staging says which).

    Staging rewrote the whole source once more than anything else reads it (a third of the
    source step); DuckDB reads Parquet as fast as the staged copy.
    """
    files = source.parquet_files()
    if not files:
        return None
    mapping = dict(spec.columns)
    matching = set()  # schema digests whose files hold the plan's columns and types
    for path in files:
        footer = arrow_footer(path)
        if footer is None or footer.duckdb_differs or _small_groups(footer):  # _duckdb_reads_otherwise
            return None
        if footer.schema_digest in matching:  # one Polars schema (curate.footers): checked once
            continue
        raw = polars_schema(path)
        if "_source_file" in raw or "file_row_number" in raw:  # the names of the columns added below
            return None
        for canonical, dtype in schema.items():
            column = mapping.get(canonical, canonical)
            if canonical == UID and column not in raw:
                continue
            if raw.get(column) != dtype:
                return None
        matching.add(footer.schema_digest)
    has_uid = mapping.get(UID, UID) in polars_schema(files[0])
    # uid comes first in the schema; without one in the files curate derives it
    select = [(mapping.get(c, c), c) for c in schema if has_uid or c != UID]
    # absolute: kept.json is read from anywhere; the file's index in the list is its position in
    # the source, as staging numbered it
    return KeptReference(tuple(Path(f).absolute().as_posix() for f in files), tuple(select),
                         uids=not has_uid, columns=tuple(schema),
                         versions=tuple(file_version(Path(f)) for f in files))


# The share of the machine's memory one shard of source rows may take, unpacked (its Parquet
# footers say how large its rows are): a 20 kB file held 3,000 rows of 1 MiB of text each, and
# ended in an internal "Out of Memory" error after filling 2 GB.
SHARD_MEMORY_SHARE = 4


def shard_bytes_problem(source: Source, shard_size: int) -> tuple[str, str] | None:
    """(message, hint) when a shard of the Parquet source's largest rows would take more than
    1/SHARD_MEMORY_SHARE of this machine's memory, from the files' footers; None otherwise."""
    parquet_files = getattr(source, "parquet_files", None)
    files = parquet_files() if parquet_files is not None else None
    if not files:
        return None
    widest, where, rows = 0.0, None, 0
    for path in files:
        footer = arrow_footer(path)
        if footer is None:
            continue
        rows += footer.rows
        if footer.widest_row_bytes > widest:
            widest, where = footer.widest_row_bytes, path
    budget = _memory_bytes() // SHARD_MEMORY_SHARE
    needed = widest * min(shard_size, rows)
    if needed <= budget or where is None:
        return None
    fits = int(budget // widest)
    if fits < 1:  # one row past the budget: "set run.shard_size to 1 or less" came back at 1
        return (f"rows of {where} take {widest:,.0f} bytes each unpacked (its footer says), more than the "
                f"{decimal_size(budget)} a shard may take on this machine, for a file of {where.stat().st_size:,} bytes",
                "the footer is damaged or the rows are too large to read a row at a time: write the file again, or "
                "move it out of source.path")
    return (f"rows of {where} take {widest:,.0f} bytes each unpacked (its footer says), so a shard of "
            f"{min(shard_size, rows):,} of them would hold {decimal_size(needed)} in memory, more than a "
            f"{SHARD_MEMORY_SHARE}th of this machine's {decimal_size(_memory_bytes())}",
            f"set run.shard_size to {fits:,} or less")


def _refuse_unpacked(source: Source, spec: SourceSpec, schema: Schema, shard_size: int, ctx: StepContext) -> None:
    """A shard of a Parquet source that would unpack past its share of memory, refused before a
    row is read (``curate.unpacked``: a value stored once in a dictionary counts once per row)."""
    parquet_files = getattr(source, "parquet_files", None)
    files = parquet_files() if parquet_files is not None else None
    if not files:
        return
    raw = polars_schema(files[0])
    mapping = dict(spec.columns)
    read = {mapping.get(c, c): raw[mapping.get(c, c)] for c in schema if mapping.get(c, c) in raw}  # file's names
    text = (pl.Utf8, pl.Binary, pl.Categorical, pl.Enum)
    columns = {c: dtype == pl.Binary for c, dtype in read.items() if isinstance(dtype, text)}
    nested = tuple(c for c, dtype in read.items() if holds_text(dtype))
    con = ctx.duckdb()
    try:
        problem = unpacked_shard_problem(con, files, columns, shard_size, _memory_bytes() // SHARD_MEMORY_SHARE,
                                         nested)
    finally:
        con.close()
    if problem is not None:
        raise problem


def _memory_bytes() -> int:
    return machine_memory()  # a name of this module's own, for tests to shrink the machine


def _footer_rows(footers: list[ArrowFooter | None]) -> int | None:
    """The rows the files' footers say they hold (what DuckDB reads of them); None when pyarrow
    cannot read a footer."""
    total = 0
    for footer in footers:
        if footer is None:
            return None
        total += footer.rows
    return total


def _one_schema(footers: list[ArrowFooter | None]) -> bool:
    """Whether every file's footer holds the first one's schema (Parquet's and the Arrow schema
    its writer stored): DuckDB then reads them all as it reads the first, without matching
    columns by name."""
    digests = set()
    for footer in footers:
        if footer is None:
            return False
        digests.add(footer.schema_digest)
        if len(digests) > 1:
            return False
    return True


def _duckdb_reads_otherwise(path: Path) -> bool:
    """Whether DuckDB reads a column of ``path`` as other values than Polars does (Polars' are the
    plan's): a duration (DuckDB takes the raw count, so a pyarrow ``duration[s]`` became as many
    milliseconds, 1000× too short), an extension type (a UUID came back as the bytes of its
    36-character text), an INT96 timestamp (nanoseconds cut to microseconds) or a date64. Such a
    file is staged: Polars reads it and writes what DuckDB then reads right (and a file pyarrow
    cannot read is staged too: the staged read says what is wrong with it)."""
    footer = arrow_footer(path)
    return footer is None or footer.duckdb_differs


# A Parquet file of this many row groups or more, holding fewer than SMALL_ROW_GROUP_ROWS rows each
# on average, is staged rather than read in place: DuckDB spends ~0.25 ms on every row group of
# every query and hands each one over as a batch of its own, so a file of 100,000 one-row groups
# took 56 s and 2.2 GB through a source and a filter; Polars reads it once, 4× faster, and the
# staged copy has row groups of its own size.
SMALL_ROW_GROUPS = 10_000
SMALL_ROW_GROUP_ROWS = 100


def small_row_groups(path: Path) -> bool:
    """Whether ``path`` holds so many row groups of so few rows that it is staged."""
    footer = arrow_footer(path)
    return footer is not None and _small_groups(footer)


def _small_groups(footer: ArrowFooter) -> bool:
    return footer.row_groups >= SMALL_ROW_GROUPS and footer.rows < SMALL_ROW_GROUP_ROWS * footer.row_groups


def _warn_small_row_groups(source: Source) -> None:
    """Say which files are staged for their row groups, and how to spare the cost."""
    parquet_files = getattr(source, "parquet_files", None)
    for path in (parquet_files() if parquet_files is not None else None) or ():
        footer = arrow_footer(path)
        if footer is not None and small_row_groups(path):
            logger.warning("%s holds %s rows in %s row groups (%.1f rows each): it is read through a staged copy, "
                           "slowly; rewrite it with larger row groups (pyarrow: row_group_size=100_000 or more; "
                           "Polars and DuckDB write such by default)", path, f"{footer.rows:,}",
                           f"{footer.row_groups:,}", footer.rows / footer.row_groups)


def _source_file(source: Source, file_index: int) -> Path | None:
    """The file a file source reads as its ``file_index``-th frame; None for other sources."""
    files = getattr(source, "files", None)
    if files is None:
        return None
    try:
        return files()[file_index]
    except (CurateError, OSError, IndexError):
        return None


def _part_name(source: Source, file_index: int) -> str:
    """The file as messages name it: a source may name its local copy of an object by its URL."""
    path = _source_file(source, file_index)
    if path is None:
        return f"source part {file_index + 1}"
    name_of = getattr(source, "name_of", None)
    return name_of(path) if name_of is not None else str(path)


def _located_error(source: Source, file_index: int, error: Exception) -> SourceError | None:
    """The source's own account of a read error (file, line, column), when it can give one."""
    read_error = getattr(source, "read_error", None)
    path = _source_file(source, file_index)
    if read_error is None or path is None:
        return None
    return read_error(path, error, located_only=True)


def _in_place_error(source: Source, in_place: KeptReference, error: Exception,
                    con: duckdb.DuckDBPyConnection) -> SourceError | None:
    """A Parquet source read where it lies failed in DuckDB on what a file holds (strings that are
    not UTF-8, pages cut short): the source's own account of the file DuckDB names, else DuckDB's
    first line with the file; where DuckDB names none, the first file that fails read alone
    (every file is read again: this is the error's path); None when none does."""
    text = str(error)
    named = [i for i, path in enumerate(in_place.files) if path in text]
    if not named:
        named = [i for i in [_first_unreadable(con, in_place.files)] if i is not None]
    for file_index in named:
        located = _located_error(source, file_index, error)
        if located is not None:
            return located
        first_line = text.strip().splitlines()[0]
        return SourceError(f"could not read {_part_name(source, file_index)}: {first_line}",
                           "check the file's format, its column types and the source.columns mapping "
                           "(a file whose footer reads but whose data does not was cut short or damaged: "
                           "write or copy it again)")
    return None


def _first_unreadable(con: duckdb.DuckDBPyConnection, files: tuple[str, ...]) -> int | None:
    """The position of the first of ``files`` DuckDB cannot read whole on its own."""
    for index, path in enumerate(files):
        try:
            reader = con.execute(f"SELECT * FROM read_parquet({literal(path)})").fetch_record_batch(65_536)
            for _ in reader:
                pass
        except (duckdb.Error, OSError):
            return index
    return None


def _stage(source: Source, spec: SourceSpec, schema: Schema, staging: Path) -> str | None:
    """Copy every source frame, mapped and cast, to Parquet under ``staging``; SQL reading the
    copy, or None when the source has no frames."""
    staging.mkdir(parents=True)
    files = []
    for file_index, frame in enumerate(source.scan()):
        staged = staging / f"part-{file_index:05d}.parquet"
        try:
            raw = dict(frame.collect_schema())
            missing = _missing_columns(raw, spec, schema)
            if missing:
                name = _part_name(source, file_index)
                raise SourceError(
                    f"{name} has no column {missing[0]!r}, which the first file of the source has",
                    f"every file of a source needs the same columns; {name} has: {', '.join(raw)}",
                )
            exprs = _select_expressions(raw, spec, schema)
            _refuse_rounded(frame, raw, spec, schema, _part_name(source, file_index))
            (
                frame.with_row_index("_row")
                .select([pl.lit(file_index, dtype=pl.Int32).alias("_file"), pl.col("_row").cast(pl.Int64), *exprs])
                .sink_parquet(staged, compression=STAGING_COMPRESSION)
            )
        except (pl.exceptions.PolarsError, OSError) as exc:
            located = _located_error(source, file_index, exc)
            if located is not None:
                raise located from None
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SourceError(f"could not read {_part_name(source, file_index)}: {first_line}",
                              "check the file's format, its column types and the source.columns mapping") from None
        files.append(staged)
    if not files:
        return None
    return "read_parquet([" + ", ".join(literal(f.as_posix()) for f in files) + f"]{read_option()})"


def _refuse_rounded(frame: pl.LazyFrame, raw: Schema, spec: SourceSpec, schema: Schema, name: str) -> None:
    """A whole number of ``frame`` that its column's common type (a float, where another file of
    the source holds fractions) cannot hold exactly: an error naming the file, row and value.
    9007199254740993 in one file and 0.5 in another came out 9007199254740992.0 (the strict cast
    checks range, not precision)."""
    mapping = dict(spec.columns)
    rounded = {c: mapping.get(c, c) for c, d in schema.items()
               if d.is_float() and (raw_type := raw.get(mapping.get(c, c))) is not None and raw_type.is_integer()}
    for canonical, column in rounded.items():
        back = pl.col(column).cast(schema[canonical]).cast(raw[column], strict=False)
        found = frame.select(pl.col(column).filter(back.ne_missing(pl.col(column))).first(),
                             back.ne_missing(pl.col(column)).arg_true().first().alias("_at")).collect()
        if found["_at"][0] is not None:
            raise SourceError(
                f"cannot read {name}: row {found['_at'][0] + 1:,}, column {column!r} holds {found[column][0]}, a whole "
                f"number a {dtype_name(schema[canonical])} cannot hold exactly (another file of the source holds "
                "fractions there, so the column is read as floats) and it would be rounded",
                "give the column one type in every file: write the numbers as text if they are ids, or as floats "
                "in every file if rounding is fine")


def _cast(frame: pl.DataFrame, schema: Schema) -> pl.DataFrame:
    have = frame.schema  # once: per column it cost O(columns²)
    casts = [pl.col(n).cast(d, strict=False) for n, d in schema.items() if n in have and have[n] != d]
    return frame.with_columns(casts) if casts else frame


def _source_has_uid(staging: Path) -> bool:
    return UID in pl.read_parquet_schema(staging / "part-00000.parquet")


def _check_unique(con: Any, files: list[Path]) -> None:
    if not files:
        return
    paths = ", ".join(literal(f.as_posix()) for f in files)
    count, present, distinct = con.sql(f"SELECT count(*), count(uid), count(DISTINCT uid) FROM read_parquet([{paths}], "
                                       "union_by_name = true)").fetchall()[0]
    if present != count:
        raise SourceError(
            f"the source's 'uid' column is empty (null) on {count - present} of its {count} rows",
            "give every row a uid, or drop the column from the source to let curate derive them",
        )
    if count != distinct:
        raise SourceError(
            f"the source's 'uid' column has {count - distinct} duplicate values",
            "uids must be unique: drop the column from the source to let curate derive them",
        )


__all__ = ["canonical_schema", "in_place_reference", "ingest", "shard_bytes_problem", "write_parquet_atomic"]
