"""Where a finished step's rows are: the one answer that the run's views (``curate.duckdb``,
written by :func:`curate.runstore.write_views`), ``curate report`` and :class:`curate.Run`'s
tables all read, rendered as DuckDB SQL (:meth:`KeptRows.sql`) or as a Polars LazyFrame
(:meth:`KeptRows.frame`).

A step stores its kept rows in ``data/``, except a step that ran fused before its group's last
(``curate.fusion``): a source read in place keeps a reference instead (``kept.json``: its files,
read where they lie, beside its uids in ``uids/``), exact and in order; any other such step's kept
rows are the rows that left its group after it (the last member's kept rows and the later
members' dropped rows), in that order and with the values the later members left them (a text
normalize_text cleaned is shown clean). Its dropped rows are in ``dropped/``, their columns
matched by name (a dedup's shards have ``_duplicate_of``, a filter's do not).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.keptref import KeptReference, KeptReferenceError, read_reference
from curate.schema import DROP_REASON
from curate.shards import KEPT_REFERENCE, in_shard_order, iter_dropped_files, iter_shard_files


@dataclass(frozen=True)
class KeptRows:
    """The Parquet files holding a step's kept rows, read in this order. ``columns``: the step's
    columns to take from them, matched by name (None: all of them, every file of one schema);
    ``reference``: a source read in place, whose ``files`` are the source's own; ``uid_files``:
    its derived uids, row for row."""

    files: tuple[Path, ...]
    columns: tuple[str, ...] | None = None
    reference: KeptReference | None = None
    uid_files: tuple[Path, ...] = ()

    def sql(self) -> str:
        """A DuckDB relation of the rows (``SELECT * FROM`` it)."""
        from curate.duck import quote
        from curate.parquet_nan import read_option
        from curate.schema import UID

        if self.reference is not None:
            ref = self.reference
            columns = ", ".join(f"s.{quote(c)}" for c in ref.columns if c != UID)
            ordered = f"(SELECT * FROM {ref.relation()} ORDER BY _file, _row) s"
            if not ref.uids:
                return f"(SELECT s.{UID}, {columns} FROM {ordered})"
            uid_files = f"read_parquet({parquet_list(self.uid_files)}{read_option()})"
            return f"(SELECT u.{UID}, {columns} FROM {ordered} POSITIONAL JOIN {uid_files} u)"
        if self.columns is None:
            return f"read_parquet({parquet_list(self.files)}{read_option()})"
        rows = f"read_parquet({parquet_list(self.files)}, union_by_name = true{read_option()})"
        return f"(SELECT {', '.join(quote(c) for c in self.columns)} FROM {rows})"

    def frame(self) -> Any:
        """The same rows as a Polars LazyFrame over the files (nothing is read until it is collected)."""
        import polars as pl

        from curate.schema import UID

        if self.reference is not None:
            ref = self.reference
            source = pl.concat([pl.scan_parquet(path).select([pl.col(column).alias(name) for column, name in ref.select])
                                for path in ref.files], how="vertical_relaxed")
            columns = [UID, *(c for c in ref.columns if c != UID)]
            if not ref.uids:
                return source.select(columns)
            uids = pl.concat([pl.scan_parquet(path).select(UID) for path in self.uid_files], how="vertical")
            return pl.concat([uids, source.select(columns[1:])], how="horizontal")
        if self.columns is None:
            return pl.scan_parquet(list(self.files))
        return union_by_name(self.files).select(list(self.columns))


def union_by_name(files: tuple[Path, ...] | list[Path]) -> Any:
    """A LazyFrame of ``files`` one after another, columns matched by name (DuckDB's
    ``union_by_name``): a column a file lacks is null in its rows."""
    import polars as pl

    return pl.concat([pl.scan_parquet(path) for path in files], how="diagonal_relaxed")


def parquet_list(files: tuple[Path, ...] | list[Path]) -> str:
    """``files`` as a DuckDB list of quoted paths."""
    return "[" + ", ".join("'" + f.as_posix().replace("'", "''") + "'" for f in files) + "]"


def kept_rows(manifest: dict[str, Any], record: dict[str, Any], step_dir_of: Callable[[dict[str, Any]], Any] | None = None,
              confine: Callable[[Path], Path] | None = None) -> KeptRows | None:
    """Where the rows a finished step kept are, wherever that is (None: nowhere to read).
    ``step_dir_of(record)``: where a record's store is (default: its recorded path).
    ``confine(path)``: the path to read for each file read (default: the path itself); ``curate
    report`` passes one that raises :class:`curate.runfiles.FileOutside` for a file outside the
    folders it may read."""
    import polars as pl

    step_dir_of = step_dir_of or (lambda r: Path(r["path"]))
    confined_only = confine is not None
    confine = confine or (lambda path: path)
    step_dir = step_dir_of(record)
    if step_dir is None:
        return None
    if record.get("kept_rows_stored", True):
        data = tuple(confine(path) for path in iter_shard_files(step_dir))
        return KeptRows(data) if data else None
    reference = step_dir / KEPT_REFERENCE
    if reference.exists():
        reference = confine(reference)
        try:
            ref = read_reference(reference)
        except (KeptReferenceError, OSError):
            return None  # an older or damaged reference is never run: nothing to read here
        if confined_only:  # the source's files, read where they lie: named by data, confined too
            ref = dataclasses.replace(ref, files=tuple(confine(Path(f)).as_posix() for f in ref.files))
        if not all(Path(f).is_file() for f in ref.files):
            return None  # the source moved, or a pipe stands in its place (DuckDB would wait on it)
        if ref.changed():
            return None  # a file rewritten since the run: its rows are not the ones uids/ numbers
        uids = tuple(confine(path) for path in in_shard_order((step_dir / "uids").glob("shard-*.parquet"))) \
            if ref.uids else ()
        return KeptRows(tuple(Path(f) for f in ref.files), tuple(ref.columns), ref, uids)
    labels = record.get("fused") or []
    if record["label"] not in labels or labels[-1] == record["label"]:
        return None
    by_label = {r["label"]: r for r in manifest.get("steps", [])}
    later = [by_label[label] for label in labels[labels.index(record["label"]) + 1:] if label in by_label]
    files: list[Path] = []
    for position, other in enumerate(later):
        other_dir = step_dir_of(other)
        if other_dir is None:
            return None
        if position == len(later) - 1:
            files += map(confine, iter_shard_files(other_dir))
        files += map(confine, iter_dropped_files(other_dir))
    present: set[str] = set()
    for path in files:
        present.update(pl.read_parquet_schema(path))
    columns = tuple(c for c in record.get("columns", {}) if c in present)
    if not files or not columns:
        return None
    return KeptRows(tuple(files), columns)


@dataclass(frozen=True)
class StepRows:
    """A finished step of a run and where its rows are: the views ``NN_label`` (``kept``) and
    ``NN_label_dropped`` (``dropped``, of ``dropped_columns``) of its ``curate.duckdb``."""

    index: int
    label: str
    kept: KeptRows | None
    dropped: tuple[Path, ...]
    dropped_columns: frozenset[str]

    @property
    def name(self) -> str:
        return f"{self.index:02d}_{self.label}"

    @property
    def in_lineage(self) -> bool:
        """Its dropped rows say why (the ``lineage`` view reads them)."""
        return bool(self.dropped) and DROP_REASON in self.dropped_columns

    def dropped_sql(self) -> str:
        from curate.parquet_nan import read_option

        return f"read_parquet({parquet_list(self.dropped)}, union_by_name = true{read_option()})"

    def dropped_frame(self) -> Any:
        return union_by_name(self.dropped)


def finished_steps(manifest: dict[str, Any]) -> list[StepRows]:
    """Every complete step of ``manifest`` in order, with where its rows are."""
    return [rows for record in manifest.get("steps", []) if (rows := step_rows(manifest, record)) is not None]


def step_rows(manifest: dict[str, Any], record: dict[str, Any]) -> StepRows | None:
    """Where the rows of the step of ``record`` (one of ``manifest``'s) are; None for a step that
    did not finish, or a record of another shape (a manifest edited by hand): nothing of it goes
    into SQL unquoted."""
    import polars as pl

    if not record.get("complete"):
        return None
    index, label = record.get("index"), record.get("label")
    if not isinstance(index, int) or not isinstance(label, str):
        return None
    dropped = tuple(iter_dropped_files(Path(record["path"])))
    columns: set[str] = set()
    for path in dropped:
        columns.update(pl.read_parquet_schema(path))
    return StepRows(index, label, kept_rows(manifest, record), dropped, frozenset(columns))
