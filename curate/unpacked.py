"""The text a shard of a Parquet source unpacks to, measured before any shard is read.

A Parquet file stores a value repeated in a column once, in the column's dictionary, and each row
as an index into it: a 600 kB file held 100,000 rows of one 20 kB alt-text (2 GB of text) and
its footer said its rows took 0.2 bytes each, so the footer check (``curate.ingest.
shard_bytes_problem``) let it through and the run took 4.3 GB of memory; a 5 MB file of 1M rows
of one 1 MiB value unpacks to a terabyte. DuckDB sums the lengths of the text without unpacking it
(its vectors keep the dictionary: 0.03 s and 77 MB for that terabyte), per shard of the rows as
the run will cut them, and a shard past the memory budget is refused naming the shard_size that
fits. Text inside lists, structs and maps is read by pyarrow with its leaves as dictionaries, row
by row. Files other steps read whole (metadata lists, eval sets) are measured the same way
(:func:`file_text_bytes`).
"""

from __future__ import annotations

import bisect
from pathlib import Path

import duckdb
import numpy as np

from curate.duck import literal, quote
from curate.errors import SourceError
from curate.footers import arrow_footer, polars_schema
from curate.stopping import watch


def unpacked_shard_problem(con: duckdb.DuckDBPyConnection, files: list[Path], columns: dict[str, bool],
                           shard_size: int, budget: int, nested: tuple[str, ...] = ()) -> SourceError | None:
    """The error for a shard of the rows of Parquet ``files`` whose ``columns`` (name: whether it
    holds bytes rather than text) take more than ``budget`` bytes unpacked; None when every shard
    fits (or a footer cannot be read: the read after this says what is wrong with the file).
    ``nested``: columns of lists, structs or maps holding text, measured row by row with their
    text leaves read by pyarrow as dictionaries (:func:`_nested_bytes`).

    The footers bound what each shard's dictionaries may unpack to (rows × the column chunk's
    unpacked size, as no value is longer); only the files of a shard that bound does not clear
    are measured, one query per file: over several files at once DuckDB unpacked the dictionary
    (a terabyte of text took 10 s and 2.3 GB, not 0.03 s and 77 MB)."""
    footers = [arrow_footer(path) for path in files]
    if not (columns or nested) or any(footer is None for footer in footers):
        return None
    worst: dict[int, int] = {}
    holders: dict[int, set[int]] = {}
    starts, row = [], 0
    for index, footer in enumerate(footers):
        assert footer is not None
        starts.append(row)
        for rows, bound in footer.dictionary_bounds:
            if bound and rows:
                for shard in range(row // shard_size, (row + rows - 1) // shard_size + 1):
                    worst[shard] = worst.get(shard, 0) + bound
                    holders.setdefault(shard, set()).add(index)
            row += rows
    suspects = sorted({index for shard, bound in worst.items() if bound > budget for index in holders[shard]})
    measured: dict[int, int] = {}
    for index in suspects:
        for shard, used in _measure(con, files[index], starts[index], columns, shard_size):
            measured[shard] = measured.get(shard, 0) + used
        row = starts[index]
        for per_row in _nested_bytes(files[index], nested):
            shards = (row + np.arange(len(per_row))) // shard_size
            first = int(shards[0]) if len(shards) else 0
            for offset, used in enumerate(np.bincount(shards - first, weights=per_row).tolist()):
                measured[first + offset] = measured.get(first + offset, 0) + int(used)
            row += len(per_row)
    if not measured or max(measured.values()) <= budget:
        return None
    used, shard = max((used, -shard) for shard, used in measured.items())
    shard = -shard
    first_file = bisect.bisect_right(starts, shard * shard_size) - 1
    fits = shard_size * budget // used
    where = f"rows {shard * shard_size + 1:,} to {(shard + 1) * shard_size:,}"
    return SourceError(
        f"shard {shard + 1} of the source ({where}, from {files[first_file]} on) holds {decimal_size(used)} of "
        f"text unpacked, more than the {decimal_size(budget)} a shard may take on this machine (a quarter of its "
        "memory): a value a Parquet file stores once, in its dictionary, is unpacked once for every row that "
        "holds it",
        f"set run.shard_size to {fits:,} or less" if fits >= 1 else
        "a single row holds more than that: remove such rows from the file")


def _measure(con: duckdb.DuckDBPyConnection, path: Path, start: int, columns: dict[str, bool],
             shard_size: int) -> list[tuple[int, int]]:
    """(shard, bytes of ``columns``) of one file whose first row is the source's ``start``-th.
    One flat query: through a subquery, with a filename column, union_by_name or can_have_nan,
    DuckDB unpacked the dictionary too."""
    present = polars_schema(path)
    lengths = [f"coalesce({'octet_length' if binary else 'strlen'}({quote(c)}), 0)"
               for c, binary in columns.items() if c in present]
    if not lengths:
        return []
    try:
        return con.execute(
            f"SELECT ({int(start)} + file_row_number) // {int(shard_size)} AS shard, sum({' + '.join(lengths)}) "
            f"FROM read_parquet({literal(path.absolute().as_posix())}, file_row_number = true) GROUP BY shard"
        ).fetchall()
    except duckdb.Error:  # what the file holds: the read after this says what is wrong, and where
        return []


def decimal_size(count: int | float) -> str:
    """``6_300_000_000`` → ``6.3 GB``; under a GB in MB (a budget of 5 MB read "0.0 GB")."""
    return f"{count / 1e9:,.1f} GB" if count >= 1e9 else f"{count / 1e6:,.1f} MB"


def _nested_bytes(path: Path, nested: tuple[str, ...]) -> list[np.ndarray]:
    """The bytes of text in each row of ``path``'s ``nested`` columns (lists, structs, maps of
    text), one array per row group, read with their text leaves as dictionaries: what a value
    stored once unpacks to is its length times its uses, found without unpacking it (a
    list<string> of one 20 kB value in 400,000 rows passed the check of flat columns, and took
    5 GB in 14 s)."""
    import pyarrow.parquet as pq

    if not nested:
        return []
    try:
        metadata = pq.read_metadata(path)
        leaves = [metadata.schema.column(i) for i in range(len(metadata.schema))]
        text = [leaf.path for leaf in leaves
                if leaf.physical_type == "BYTE_ARRAY" and leaf.path.split(".")[0] in nested and "." in leaf.path]
        present = [name for name in nested if any(p.startswith(name + ".") for p in text)]
        if not present:
            return []
        file = pq.ParquetFile(path, read_dictionary=text)
        out = []
        for group in range(metadata.num_row_groups):
            table = file.read_row_group(group, columns=present).combine_chunks()
            rows = np.zeros(table.num_rows, dtype=np.int64)
            for column in table.columns:
                for chunk in column.chunks:
                    rows += _row_text_bytes(chunk)
            out.append(rows)
        return out
    except Exception:  # what the file holds: the read after this says what is wrong, and where
        return []


def _row_text_bytes(array: object) -> np.ndarray:
    """The bytes of text and binary values in each row of ``array`` (pyarrow), dictionaries
    unpacked by count."""
    import pyarrow as pa
    import pyarrow.compute as pc

    assert isinstance(array, pa.Array)
    kind = array.type
    texts = (pa.types.is_string, pa.types.is_binary, pa.types.is_large_string, pa.types.is_large_binary)
    if pa.types.is_dictionary(kind):
        if not any(test(kind.value_type) for test in texts):
            return np.zeros(len(array), dtype=np.int64)
        lengths = pc.take(pc.binary_length(array.dictionary), array.indices)
        return np.asarray(lengths.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    if any(test(kind) for test in texts):
        return np.asarray(pc.binary_length(array).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_map(kind):
        inner = (_row_text_bytes(array.keys) + _row_text_bytes(array.items)) if pa.types.is_map(kind) \
            else _row_text_bytes(array.values)
        offsets = np.asarray(array.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
        total = np.concatenate([[0], np.cumsum(inner)])
        return total[offsets[1:]] - total[offsets[:-1]]
    if pa.types.is_fixed_size_list(kind):  # its values hold a slot for every row, null or not
        size = kind.list_size
        inner = _row_text_bytes(array.values.slice(array.offset * size, len(array) * size))
        return inner.reshape(len(array), size).sum(axis=1) if len(array) and size else np.zeros(len(array), np.int64)
    if pa.types.is_struct(kind):
        rows = np.zeros(len(array), dtype=np.int64)
        for i in range(kind.num_fields):
            rows += _row_text_bytes(array.field(i))
        return rows
    return np.zeros(len(array), dtype=np.int64)


def file_text_bytes(path: Path, budget: int) -> int | None:
    """The bytes of text a Parquet file read whole unpacks to, measured when its footer cannot
    rule out more than ``budget`` (a value stored once in a dictionary counts once per row); None
    when it can, or when the footer cannot be read (the reader says what is wrong). For files
    read whole outside the source (metadata lists, eval sets): a 207 kB list unpacked to 4.6 GB
    at ``curate validate`` (security re-probe)."""
    import polars as pl

    footer = arrow_footer(path)
    if footer is None or sum(bound for _, bound in footer.dictionary_bounds) <= budget:
        return None
    schema = polars_schema(path)
    flat = {c: d == pl.Binary for c, d in schema.items() if isinstance(d, (pl.String, pl.Binary, pl.Categorical, pl.Enum))}
    nested = tuple(c for c, d in schema.items() if holds_text(d))
    con = watch(duckdb.connect(config={"memory_limit": "512MB", "threads": 2}))
    try:
        used = sum(int(bytes_) for _, bytes_ in _measure(con, path, 0, flat, 2**62))
    finally:
        con.close()
    return used + sum(int(rows.sum()) for rows in _nested_bytes(path, nested))


def holds_text(dtype: object) -> bool:
    """A list, array or struct (Polars) with text or bytes somewhere inside."""
    import polars as pl

    text = (pl.String, pl.Binary, pl.Categorical, pl.Enum)
    if isinstance(dtype, (pl.List, pl.Array)):
        return isinstance(dtype.inner, text) or holds_text(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return any(isinstance(f.dtype, text) or holds_text(f.dtype) for f in dtype.fields)
    return False


WHOLE_FILE_TEXT = 2**30


def machine_memory() -> int:
    """This machine's memory in bytes (16 GB where the system does not say)."""
    import os

    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 16 * 10**9


def whole_file_budget() -> int:
    """What a list or eval set read whole may unpack to: 1 GiB of text (MetaCLIP's 500,000
    entries are ~8 MB; reading one takes about twice its text), or an eighth of this machine's
    memory where that is less."""
    return min(WHOLE_FILE_TEXT, machine_memory() // 8)


def past_whole_file_budget(path: Path, what: str) -> str | None:
    """What to say of a Parquet file read whole (``what`` it is: "a list") whose text unpacks past
    :func:`whole_file_budget`, the caller's error naming the file before it; None when it fits."""
    budget = whole_file_budget()
    used = file_text_bytes(path, budget)
    if used is None or used <= budget:
        return None
    return (f"holds {decimal_size(used)} of text unpacked, more than the {decimal_size(budget)} {what} may take on "
            "this machine (a value a Parquet file stores once, in its dictionary, is unpacked once for every row "
            "that holds it)")
