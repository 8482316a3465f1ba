"""Reading a metadata list file, which may come with a spec from someone else: bounded, never
waiting, and an error that names the file, the line and the fix.

Files are opened with :func:`curate.runfiles.open_regular` (a pipe waited for a writer forever,
``/dev/zero`` never ended). A plain list is read in chunks and split as ``str.splitlines`` splits
the whole text, so no line is held much beyond :data:`MAX_ENTRY_CHARS`: a 2 GB line of NUL bytes
(a sparse file) took 6 GB before the step saw it. Longer entries are refused: pyahocorasick builds
a trie as deep as the longest entry and frees it recursively, and an entry of ~500,000 characters
crashed the process (a segmentation fault) when the automaton was freed. MetaCLIP's entries are
WordNet synsets, Wikipedia titles (255 bytes at most) and frequent bigrams: far below a thousand.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import BinaryIO

import polars as pl

from curate.errors import CurateError

MAX_ENTRY_CHARS = 1_000
CHUNK_BYTES = 4 << 20
SNIFF_BYTES = 1 << 16  # a text table with a NUL byte this early is not text (a sparse or binary file)
TEXT_TABLES = (".csv", ".tsv", ".jsonl", ".json")
LINE_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines splits on
LIST_HINT = "save the list as UTF-8 text, one entry per line"
TABLE_HINT = "check the file's format, or give a text file with one entry per line"
LONG_HINT = "MetaCLIP's entries are words and titles, one per line or row: is this the right file and column?"


class MetadataError(CurateError):
    """The metadata list cannot be read as the step's params say."""

    exit_code = 2


def read_lines(handle: BinaryIO, file: Path) -> list[str]:
    """The non-blank lines of a plain list (UTF-8), as ``str.splitlines`` splits the whole text."""
    entries: list[str] = []
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending, offset, line_number = "", 0, 0
    while True:
        chunk = handle.read(CHUNK_BYTES)
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            raise MetadataError(f"{file} is not UTF-8 text ({exc.reason} at byte {offset + exc.start:,})",
                                LIST_HINT) from None
        if offset == 0:
            text = text.removeprefix("\ufeff")  # a byte-order mark is no part of the first entry
        offset += len(chunk)
        text = pending + text
        # Unless the file ended, the last line may go on in the next chunk (a "\r" too: "\r\n"). It
        # is looked for in the text's end only: a line longer than that is refused anyway.
        last = text[-MAX_ENTRY_CHARS - 2:].splitlines(keepends=True)[-1] if chunk and text else ""
        pending = last if last and (last[-1] not in LINE_BREAKS or last[-1] == "\r") else ""
        lines = text[:len(text) - len(pending)].splitlines()
        if "\x00" in text or max(map(len, lines), default=0) > MAX_ENTRY_CHARS:
            for number, line in enumerate(lines, line_number + 1):
                _check(line, number, file)
        line_number += len(lines)
        entries.extend(line for line in lines if line.strip())
        if len(pending) > MAX_ENTRY_CHARS + 1:
            _check(pending, line_number + 1, file)
        if not chunk:
            return entries


def _check(entry: str, line_number: int, file: Path) -> None:
    if "\x00" in entry:
        raise MetadataError(f"{file} is not a text file: line {line_number:,} holds a NUL byte", LIST_HINT)
    if len(entry) > MAX_ENTRY_CHARS:
        raise MetadataError(f"{file}: line {line_number:,} is longer than the {MAX_ENTRY_CHARS:,} characters an entry "
                            f"may have ({entry[:40]!r}…)", LONG_HINT)


def read_table(handle: BinaryIO, file: Path) -> pl.DataFrame:
    """A table of entries (.parquet, .csv, .tsv, .jsonl, .json) from an opened file."""
    suffix = file.suffix.lower()
    if suffix in TEXT_TABLES and b"\x00" in handle.read(SNIFF_BYTES):
        raise MetadataError(f"cannot read {file} as a {suffix[1:]} table: it holds NUL bytes, so it is not text",
                            TABLE_HINT)
    handle.seek(0)
    if suffix == ".parquet":
        _refuse_unpacked(file)
    try:
        if suffix == ".parquet":
            return pl.read_parquet(handle)
        if suffix in (".csv", ".tsv"):
            return pl.read_csv(handle, separator="\t" if suffix == ".tsv" else ",", infer_schema=False)
        if suffix == ".jsonl":
            return pl.read_ndjson(handle)
        return pl.read_json(handle)
    except Exception as exc:  # polars raises several kinds; all mean "not a readable table"
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise MetadataError(f"cannot read {file} as a {suffix[1:]} table: {type(exc).__name__}: {first}",
                            TABLE_HINT) from None


def _refuse_unpacked(file: Path) -> None:
    """A list whose text unpacks past its budget (a value stored once in a Parquet dictionary
    counts once per row): 207 kB took 4.6 GB at curate validate (security re-probe)."""
    from curate.unpacked import past_whole_file_budget

    if (said := past_whole_file_budget(file, "a list")) is not None:
        raise MetadataError(f"{file} {said}", "give a list of distinct entries; a list this large is no metadata list")


def text_column(table: pl.DataFrame, column: str, file: Path, alias: str) -> pl.Expr:
    """``column`` as text: a text column, or whole numbers written out. A list, struct, bytes or
    float column is an error naming its type (a cast failed, or made a struct JSON-like text)."""
    dtype = table.schema[column]
    if not (dtype == pl.Utf8 or dtype == pl.Null or dtype.is_integer() or isinstance(dtype, (pl.Categorical, pl.Enum))):
        raise MetadataError(f"{file}: column '{column}' holds {dtype}, not text",
                            f"give each {alias} as a string")
    return pl.col(column).cast(pl.Utf8).alias(alias)


def check_lengths(entries: pl.Series, file: Path) -> None:
    """Refuse an entry longer than :data:`MAX_ENTRY_CHARS`, naming its row."""
    lengths = entries.str.len_chars()
    if lengths.len() and (lengths.max() or 0) > MAX_ENTRY_CHARS:  # type: ignore[operator]
        row = int(lengths.arg_max() or 0)
        raise MetadataError(f"{file}: row {row + 1:,} is longer than the {MAX_ENTRY_CHARS:,} characters an entry may "
                            f"have ({entries[row][:40]!r}…)", LONG_HINT)
