"""``kept.json``: where a source read in place keeps its rows, written as data, never as SQL.

A source group whose source is Parquet read where it lies stores no copy of the rows
(``curate.ingest``): ``kept.json`` names the files, in source order, and which of their columns
become which of the step's. Everything that reads those rows back (the run's views, ``curate
report``, ``curate inspect``, a resumed run) builds the SQL from these fields, each file a quoted
literal and each column a quoted identifier. A run directory may come from someone else: the
first format held the SQL itself, which was run as written, so a forged ``kept.json`` could read
or write any file the user can. That format is not read any more (:class:`KeptReferenceError`);
the step is computed again.

The rows are read where they lie, but curate's uids for them are stored (``uids/``, row for row):
a file changed since the run (a day's rows appended to it, a correction written back) would be
read beside the old uids, each row under another's uid and new rows under none. ``versions``
records each file's size, modification and change time as the run read it (what the source's
fingerprint counts); a file that has other ones now makes the reference nothing to read
(:meth:`KeptReference.changed`) until the run is run again. A reference without them (written
before) is read as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.duck import file_position_sql, literal, quote
from curate.parquet_nan import read_option
from curate.runfiles import read_json

FORMAT = 2


class KeptReferenceError(ValueError):
    """A ``kept.json`` that is not one this curate writes: an older format, or a damaged one."""


@dataclass(frozen=True)
class KeptReference:
    files: tuple[str, ...]  # absolute paths (POSIX), in the source's order
    select: tuple[tuple[str, str], ...]  # (column in the files, the step's column), uid first when the files have one
    uids: bool  # curate derived the uids: they are in the step's uids/, row for row
    columns: tuple[str, ...]  # the step's columns, uid first
    versions: tuple[tuple[int, int, int], ...] | None = None  # each file's (size, mtime_ns, ctime_ns), as read

    def relation(self, one_schema: bool = False) -> str:
        """DuckDB SQL for the rows with ``_file`` (the file's position) and ``_row`` beside the
        selected columns. ``read_parquet`` keeps the list's file order and each file's row order.

        Files may hold their columns in other orders, which ``union_by_name`` matches by name; it
        opens every file to bind the query (~0.15 ms a file, each query: 1.4 of a 10,000-file
        query's 4.4 CPU s). ``one_schema``: the caller knows every file has the first one's
        schema (``curate.footers``), so DuckDB takes the first file's."""
        paths = [literal(path) for path in self.files]
        selected = ", ".join(f"{quote(column)} AS {quote(name)}" for column, name in self.select)
        union = "" if one_schema else ", union_by_name = true"
        return (f"(SELECT CAST({file_position_sql('_source_file', paths)} AS INTEGER) AS _file, "
                f"CAST(file_row_number AS BIGINT) AS _row, {selected} FROM read_parquet([{', '.join(paths)}], "
                f"filename = '_source_file', file_row_number = true{union}{read_option()}))")

    def changed(self) -> list[str]:
        """The files that are not as the run read them (another size, modification or change
        time; gone): read now, their rows would not be the ones its uids were derived from."""
        if self.versions is None:
            return []
        changed = []
        for path, version in zip(self.files, self.versions):
            try:
                now = file_version(Path(path))
            except OSError:
                now = None
            if now != version:
                changed.append(path)
        return changed

    def to_json(self) -> dict[str, Any]:
        versions = {} if self.versions is None else {"versions": [list(v) for v in self.versions]}
        return {"format": FORMAT, "files": list(self.files), "select": [list(pair) for pair in self.select],
                "uids": self.uids, "columns": list(self.columns), **versions}

    @classmethod
    def from_json(cls, data: Any) -> KeptReference:
        if not isinstance(data, dict):
            raise KeptReferenceError("is not a JSON object")
        if data.get("format") != FORMAT:
            older = " (an older curate's, which held SQL)" if "relation" in data else ""
            raise KeptReferenceError(f"is not in format {FORMAT}{older}")
        files, select, uids, columns = (data.get(k) for k in ("files", "select", "uids", "columns"))
        if not (isinstance(files, list) and files and all(isinstance(f, str) and Path(f).is_absolute() for f in files)):
            raise KeptReferenceError("'files' is not a list of absolute paths")
        if not (isinstance(select, list) and select and all(
                isinstance(pair, list) and len(pair) == 2 and all(isinstance(n, str) for n in pair) for pair in select)):
            raise KeptReferenceError("'select' is not a list of [column, name] pairs")
        if not isinstance(uids, bool):
            raise KeptReferenceError("'uids' is not true or false")
        if not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
            raise KeptReferenceError("'columns' is not a list of column names")
        versions = data.get("versions")
        if versions is not None and not (isinstance(versions, list) and len(versions) == len(files) and all(
                isinstance(v, list) and len(v) == 3 and all(type(n) is int for n in v) for v in versions)):
            raise KeptReferenceError("'versions' is not a [size, mtime_ns, ctime_ns] list per file")
        return cls(tuple(files), tuple((a, b) for a, b in select), uids, tuple(columns),
                   None if versions is None else tuple((a, b, c) for a, b, c in versions))


def file_version(path: Path) -> tuple[int, int, int]:
    """A source file's size, modification and change time (``st_ctime_ns``: every write moves
    it, and no tool sets it back), as its source's fingerprint counts them."""
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


def read_reference(path: Path) -> KeptReference:
    """The reference in ``path``; :class:`KeptReferenceError` naming the file when it is not one
    this curate writes (``OSError`` when it cannot be read)."""
    try:
        return KeptReference.from_json(read_json(path))
    except KeptReferenceError as error:
        raise KeptReferenceError(f"{path} {error}") from None
    except ValueError as error:  # not JSON
        raise KeptReferenceError(f"{path} is not JSON ({error})") from None
