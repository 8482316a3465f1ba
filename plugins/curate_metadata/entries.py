"""The metadata list: entries (and their languages) from a file, or the world's concept names.

An entry's id is its position in the list (blank lines and empty entries are skipped and not
counted), as MetaCLIP indexes ``metadata.json``. The file is read as :mod:`curate_metadata.listfile`
reads it; a spec run with ``--untrusted`` may name only a file inside the working directory (the
list is copied into the run directory: any file of this machine would go wherever the run goes).

One process asks for a step's list several times (its plan check, its fingerprint,
``metadata_balance``'s per-language t, setup): a :class:`LastRead` lets it read the file once
while the file stays as it was. The checks on the path (a regular file; inside the working
directory) run on every ask; what a read found (entries, or the error of a bad line or column)
is reused only for the same file, unchanged since.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl

from curate.caseless import nfc
from curate.errors import pip_install
from curate.runfiles import NotRegularFile, describe_mode, not_regular, open_regular, outside_working_directory
from curate_metadata.listfile import MetadataError, check_lengths, read_lines, read_table, text_column

TABLE_SUFFIXES = (".parquet", ".csv", ".tsv", ".jsonl", ".json")
# A file changed less than this long before it was read is read again when asked for again: a
# change in the same tick of the file system's clock may leave its size and times as they were
# (git's "racily clean" files); some file systems keep times to 2 s.
SETTLED_NS = 2_000_000_000
__all__ = ["TABLE_SUFFIXES", "EntryList", "LastRead", "MetadataError", "load_entries", "world_entries"]


@dataclass(frozen=True)
class EntryList:
    entries: tuple[str, ...]
    languages: tuple[str | None, ...] | None  # None: one list for every language
    origin: str  # the file, or "world" for the embedded default

    def digest(self) -> str:
        payload = "\x1e".join(self.entries) + "\x1d" + "\x1e".join(str(x) for x in (self.languages or ()))
        return hashlib.sha256(payload.encode()).hexdigest()

    def frame(self) -> pl.DataFrame:
        """entry_id, entry, language: what the counts table is joined with to show names."""
        return pl.DataFrame({
            "entry_id": pl.Series(range(len(self.entries)), dtype=pl.Int64),
            "entry": pl.Series(self.entries, dtype=pl.Utf8),
            "language": pl.Series(self.languages or [None] * len(self.entries), dtype=pl.Utf8),
        })


@dataclass
class LastRead:
    """What the last read of a list file found, and which file that was (its path, how it was read,
    and the file's device, inode, size, modification and change times as it was opened)."""

    key: tuple[Any, ...] | None = None
    found: EntryList | MetadataError | None = None

    def reuse(self, key: tuple[Any, ...]) -> EntryList | None:
        """The entries read before, if ``key`` is the file as it was then (a bad list's error again)."""
        if self.key is None or key != self.key:
            return None
        if isinstance(self.found, MetadataError):
            raise self.found.with_traceback(None)
        return self.found


def _identity(status: os.stat_result) -> tuple[int, ...]:
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns


def world_entries() -> EntryList:
    try:
        from curate_world.api import concept_names
    except ImportError:
        raise MetadataError("the default metadata list is the world's concept names, but curate_world "
                            "is not installed", f"give 'entries' a list file, or {pip_install('world')}") from None

    return EntryList(concept_names(), None, "world")


def load_entries(path: str | None, entry_column: str = "entry", language_column: str = "language",
                 *, need_languages: bool = False, untrusted: bool = False,
                 last: LastRead | None = None) -> EntryList:
    """Read the list. ``need_languages``: rows carry a language, so entries must too.
    ``untrusted``: the spec is someone else's, so the file must lie inside the working directory.
    ``last``: the caller's previous read, reused if the file is unchanged; updated after a read."""
    if path is None:
        if need_languages:
            raise MetadataError("the world's concept names have no languages, but 'language' is set",
                                "give 'entries' a table with a language column, or unset 'language'")
        return world_entries()
    outside = outside_working_directory(path) if untrusted else None
    if outside:
        raise MetadataError(f"metadata list {outside}")
    file = Path(path).expanduser()
    why = not_regular(file)
    if why:
        raise MetadataError(f"metadata list {file} {why}",
                            "give 'entries' the path of a text file (one entry per line) or a table "
                            f"({', '.join(TABLE_SUFFIXES)}) with an '{entry_column}' column")
    if file.suffix.lower() not in TABLE_SUFFIXES and need_languages:
        raise MetadataError(f"{file} is a plain list (one entry per line), which has no languages",
                            f"use a table with '{entry_column}' and '{language_column}' columns, "
                            "or unset 'language'")
    how = (str(file), entry_column, language_column, need_languages)
    if last is not None:
        try:
            reused = last.reuse((*how, *_identity(os.stat(file))))
        except OSError:  # gone since it was looked at: reading it says so
            reused = None
        if reused is not None:
            return reused
    return _read(file, how, last)


def _read(file: Path, how: tuple[Any, ...], last: LastRead | None) -> EntryList:
    _, entry_column, language_column, need_languages = how
    found: EntryList | MetadataError
    try:
        with open_regular(file) as handle:
            status = os.fstat(handle.fileno())  # the file as read: a change while reading shows next time
            settled = time.time_ns() - max(status.st_mtime_ns, status.st_ctime_ns) > SETTLED_NS
            try:
                found = _entries(handle, file, entry_column, language_column, need_languages)
            except MetadataError as exc:
                found = exc
    except NotRegularFile as exc:  # replaced since it was looked at
        raise MetadataError(f"metadata list {file} is {describe_mode(exc.mode)}, not a file") from None
    except OSError as exc:
        raise MetadataError(f"metadata list {file} cannot be read ({exc.strerror or exc})") from None
    if last is not None:
        last.key, last.found = ((*how, *_identity(status)) if settled else None), found
    if isinstance(found, MetadataError):
        raise found
    return found


def _entries(handle: BinaryIO, file: Path, entry_column: str, language_column: str, need_languages: bool) -> EntryList:
    found = _list_or_table(handle, file, entry_column, language_column, need_languages)
    _check_unique(found, file)
    return found


def _check_unique(found: EntryList, file: Path) -> None:
    """Each entry (in its language) once: a repeated one got an id per copy, each balanced to about
    ``t`` rows on its own, so three copies of 'red' kept three times what one did. Entries are
    compared in NFC, as they are matched: 'café' composed and decomposed are one entry twice."""
    languages = found.languages or [None] * len(found.entries)
    first: dict[tuple[str, str | None], int] = {}
    for index, key in enumerate(zip(map(nfc, found.entries), languages, strict=True)):
        if key in first:
            count = sum(1 for other in zip(map(nfc, found.entries), languages, strict=True) if other == key)
            where = f" ({key[1]})" if key[1] is not None else ""
            spelled = found.entries[first[key]], found.entries[index]
            lines = f"{first[key] + 1} and {index + 1} of the list"
            if spelled[0] != spelled[1]:
                raise MetadataError(
                    f"{file}: entries {lines}{where} are one text in two Unicode spellings "
                    f"({ascii(spelled[0])} and {ascii(spelled[1])}: composed and decomposed accents, "
                    "NFC and NFD), and entries are matched in NFC: each would match the same texts and "
                    "be balanced as an entry of its own", "list each entry once: normalize the list to "
                    "NFC (Python: unicodedata.normalize('NFC', line)) and remove the repeats")
            raise MetadataError(f"{file}: entry {spelled[1]!r}{where} is listed {count} times (entries "
                                f"{lines}): each copy would be matched and balanced as an entry of its own",
                                "list each entry once (e.g. sort -u the file)")
        first[key] = index


def _list_or_table(handle: BinaryIO, file: Path, entry_column: str, language_column: str,
                   need_languages: bool) -> EntryList:
    if file.suffix.lower() not in TABLE_SUFFIXES:
        return EntryList(tuple(read_lines(handle, file)), None, str(file))
    table = read_table(handle, file)
    if entry_column not in table.columns:
        raise MetadataError(f"{file} has no column '{entry_column}' (columns: {', '.join(table.columns)})",
                            "set 'entry_column' to the column that holds the entries")
    has_languages = language_column in table.columns
    if need_languages and not has_languages:
        raise MetadataError(f"{file} has no column '{language_column}', but 'language' is set",
                            "set 'language_column', or unset 'language' to match every text against every entry")
    columns = [text_column(table, entry_column, file, "entry")]
    if has_languages and need_languages:
        columns.append(text_column(table, language_column, file, "language"))
    table = table.select(columns).filter(pl.col("entry").is_not_null() & (pl.col("entry").str.strip_chars() != ""))
    check_lengths(table["entry"], file)
    languages = tuple(table["language"].to_list()) if "language" in table.columns else None
    return EntryList(tuple(table["entry"].to_list()), languages, str(file))
