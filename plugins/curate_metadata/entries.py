"""The metadata list: entries (and their languages) from a file, or the world's concept names.

An entry's id is its position in the list (blank lines and empty entries are skipped and not
counted), as MetaCLIP indexes ``metadata.json``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from curate.errors import CurateError, pip_install

TABLE_SUFFIXES = (".parquet", ".csv", ".tsv", ".jsonl", ".json")


class MetadataError(CurateError):
    """The metadata list cannot be read as the step's params say."""

    exit_code = 2


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


def world_entries() -> EntryList:
    try:
        from curate_world.api import concept_names
    except ImportError:
        raise MetadataError("the default metadata list is the world's concept names, but curate_world "
                            "is not installed", f"give 'entries' a list file, or {pip_install('world')}") from None

    return EntryList(concept_names(), None, "world")


def load_entries(path: str | None, entry_column: str = "entry", language_column: str = "language",
                 *, need_languages: bool = False) -> EntryList:
    """Read the list. ``need_languages``: rows carry a language, so entries must too."""
    if path is None:
        if need_languages:
            raise MetadataError("the world's concept names have no languages, but 'language' is set",
                                "give 'entries' a table with a language column, or unset 'language'")
        return world_entries()
    file = Path(path).expanduser()
    if not file.is_file():
        raise MetadataError(f"metadata list {file} does not exist (or is not a file)",
                            "give 'entries' the path of a text file (one entry per line) or a table "
                            f"({', '.join(TABLE_SUFFIXES)}) with an '{entry_column}' column")
    if file.suffix.lower() not in TABLE_SUFFIXES:
        if need_languages:
            raise MetadataError(f"{file} is a plain list (one entry per line), which has no languages",
                                f"use a table with '{entry_column}' and '{language_column}' columns, "
                                "or unset 'language'")
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise MetadataError(f"{file} is not UTF-8 text ({exc.reason} at byte {exc.start})",
                                "save the list as UTF-8, one entry per line") from None
        return EntryList(tuple(line for line in lines if line.strip()), None, str(file))
    table = _read_table(file)
    if entry_column not in table.columns:
        raise MetadataError(f"{file} has no column '{entry_column}' (columns: {', '.join(table.columns)})",
                            "set 'entry_column' to the column that holds the entries")
    has_languages = language_column in table.columns
    if need_languages and not has_languages:
        raise MetadataError(f"{file} has no column '{language_column}', but 'language' is set",
                            "set 'language_column', or unset 'language' to match every text against every entry")
    columns = [pl.col(entry_column).cast(pl.Utf8).alias("entry")]
    if has_languages and need_languages:
        columns.append(pl.col(language_column).cast(pl.Utf8).alias("language"))
    table = table.select(columns).filter(pl.col("entry").is_not_null() & (pl.col("entry").str.strip_chars() != ""))
    languages = tuple(table["language"].to_list()) if "language" in table.columns else None
    return EntryList(tuple(table["entry"].to_list()), languages, str(file))


def _read_table(file: Path) -> pl.DataFrame:
    suffix = file.suffix.lower()
    try:
        if suffix == ".parquet":
            return pl.read_parquet(file)
        if suffix in (".csv", ".tsv"):
            return pl.read_csv(file, separator="\t" if suffix == ".tsv" else ",", infer_schema=False)
        if suffix == ".jsonl":
            return pl.read_ndjson(file)
        return pl.read_json(file)
    except Exception as exc:  # polars raises several kinds; all mean "not a readable table"
        raise MetadataError(f"cannot read {file} as a {suffix[1:]} table: {type(exc).__name__}: {exc}",
                            "check the file's format, or give a text file with one entry per line") from None
