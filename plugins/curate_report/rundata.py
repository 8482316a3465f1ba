"""A finished run as the report sees it: its manifest, and each step's shards through DuckDB.

Every read is a sample of bounded size, drawn with the same seeded per-uid hash the ``sample``
step uses, so a report is the same however the run was sharded and however many threads
DuckDB had, and a 100-million-row run costs one scan per question, not memory.
"""

from __future__ import annotations

import os
import stat
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Self

import polars as pl

from curate.duck import quote, read_option
from curate.hashing import uniform_sql
from curate.runfiles import FileOutside, NotRegularFile, confined
from curate.runstore import read_manifest
from curate.schema import UID
from curate.shards import in_shard_order
from curate_report.images import image_dirs as image_dirs_of
from curate_report.images import thumbnail

Kind = Literal["data", "dropped", "all"]


class RunData:
    def __init__(self, run_dir: Path, manifest: dict[str, Any] | None = None,
                 image_dirs: tuple[Path, ...] | None = None):
        self.run_dir = Path(run_dir)
        self.manifest = manifest if manifest is not None else read_manifest(self.run_dir)
        # Rows and thumbnails come from these folders only (the run directory and --read-from):
        # the manifest names the steps' folders, and a run from elsewhere names any it likes.
        # Refused ones are kept, by reference or by step, with where their file lies, for the
        # page's note (curate_report.leftout).
        self.image_dirs = image_dirs if image_dirs is not None else image_dirs_of(self.run_dir)
        self.images_outside: dict[str, Path] = {}
        self.rows_outside: dict[str, Path] = {}
        self.seed = int(self.manifest.get("seed") or 0)
        self._con: Any = None
        self._schemas: dict[tuple[int, str], dict[str, pl.DataType]] = {}

    # -- steps ----------------------------------------------------------------------------
    @cached_property
    def steps(self) -> list[dict[str, Any]]:
        """Records of the steps whose output can be read, in run order."""
        return [r for r in self.manifest.get("steps", []) if r.get("complete") and self.step_dir(r)]

    @property
    def final(self) -> dict[str, Any] | None:
        steps = self.steps
        return steps[-1] if steps else None

    def step_dir(self, record: dict[str, Any]) -> Path | None:
        """The step's store directory, links resolved; through RUN_DIR/steps when the run was
        moved or copied. One outside the folders the page may read is not used (said once, with
        where it lies, in ``rows_outside``)."""
        candidates = [Path(record.get("path") or "/nonexistent"),
                      self.run_dir / "steps" / f"{record['index']:02d}_{record['label']}"]
        # A step that ran fused before its group's last has no data/ (curate.fusion), only its
        # marker, dropped rows and (a source read in place) a reference: see _kept_relation.
        found = [p for p in candidates if (p / "data").is_dir() or (p / "_COMPLETE.json").exists()]
        inside = next((real for p in found if (real := confined(p, self.image_dirs)) is not None), None)
        if inside is None and found:
            self.rows_outside.setdefault(str(record["label"]), Path(os.path.realpath(found[0])))
        return inside

    def confine(self, record: dict[str, Any], path: Path) -> Path:
        """``path``, a file of ``record``'s rows, links resolved, if it lies where the page may read;
        else :class:`FileOutside` (and the step goes into ``rows_outside``)."""
        real = confined(path, self.image_dirs)
        if real is None:
            where = Path(os.path.realpath(path))
            self.rows_outside.setdefault(str(record["label"]), where)
            raise FileOutside(f"{path} lies outside the folders the report may read (at {where})", where)
        return real

    def _stored(self, record: dict[str, Any]) -> bool:
        return record.get("kept_rows_stored", True) is not False

    def _kept_relation(self, record: dict[str, Any]) -> str | None:
        """SQL for the kept rows of a step that did not store them (curate.runstore.kept_relation)."""
        from curate.runstore import kept_relation

        try:
            return kept_relation(self.manifest, record, step_dir_of=self.step_dir,
                                 confine=lambda path: self.confine(record, path))
        except FileOutside:
            return None  # said in the page's note

    def files(self, record: dict[str, Any], kind: Kind = "data") -> list[Path]:
        step_dir = self.step_dir(record)
        if step_dir is None:
            return []
        kinds = ("data", "dropped") if kind == "all" else (kind,)
        files = []
        for path in (f for k in kinds for f in in_shard_order((step_dir / k).glob("shard-*.parquet"))):
            try:  # a link among them may lead anywhere
                files.append(self.confine(record, path))
            except FileOutside:
                continue  # said in the page's note
        for path in files:  # a pipe there would make DuckDB and polars wait for a writer, forever
            mode = path.stat().st_mode
            if not stat.S_ISREG(mode):
                raise NotRegularFile(path, mode)
        return files

    def schema(self, record: dict[str, Any], kind: Kind = "data") -> dict[str, pl.DataType]:
        """Columns of a step's kept rows, dropped rows, or both (the union, as DuckDB reads it)."""
        key = (record["index"], kind)
        if key not in self._schemas and not self._stored(record) and kind != "dropped":
            relation = self.relation(record, kind)
            self._schemas[key] = {} if relation is None else dict(self.query(f"SELECT * FROM {relation} LIMIT 0").schema)
        if key not in self._schemas:
            schema: dict[str, pl.DataType] = {}
            for path in self.files(record, kind):
                for name, dtype in pl.read_parquet_schema(path).items():
                    if name not in schema or schema[name] == pl.Null:
                        schema[name] = dtype
            self._schemas[key] = schema
        return self._schemas[key]

    def first_with(self, column: str) -> dict[str, Any] | None:
        """The earliest step whose output has ``column``: where the most rows still carry it."""
        return next((r for r in self.steps if column in self.schema(r)), None)

    # -- queries --------------------------------------------------------------------------
    @property
    def con(self) -> Any:
        if self._con is None:
            from curate.duck import connect

            self._con = connect()
        return self._con

    def relation(self, record: dict[str, Any], kind: Kind = "data") -> str | None:
        """SQL for a step's rows; ``kind="all"`` is its input as the step saw it, kept and dropped."""
        if not self._stored(record) and kind != "dropped":
            kept = self._kept_relation(record)
            dropped = self.relation(record, "dropped") if kind == "all" else None
            if kept is None or dropped is None:
                return kept or dropped
            return f"(SELECT * FROM {kept} UNION ALL BY NAME SELECT * FROM {dropped})"
        files = self.files(record, kind)
        if not files:
            return None
        paths = ", ".join("'" + f.as_posix().replace("'", "''") + "'" for f in files)
        return f"read_parquet([{paths}], union_by_name = true{read_option()})"

    def query(self, sql: str) -> pl.DataFrame:
        return self.con.sql(sql).pl()

    def sample(self, record: dict[str, Any], columns: list[str], rows: int, *, kind: Kind = "data",
               where: str | None = None, salt: str = "report") -> pl.DataFrame:
        """Up to ``rows`` rows, the same ones on every render: the lowest seeded uid draws."""
        relation = self.relation(record, kind)
        schema = self.schema(record, kind)
        present = [c for c in columns if c in schema]
        if relation is None or not present:
            return pl.DataFrame()
        draw = uniform_sql(UID, self.seed, salt=salt) if UID in schema else "0"
        selected = ", ".join(quote(c) for c in present)
        condition = f"WHERE {where}" if where else ""
        return self.query(f"SELECT {selected} FROM {relation} {condition} "
                          f"ORDER BY {draw}, {quote(UID) if UID in schema else '1'} LIMIT {int(rows)}")

    @property
    def store_dir(self) -> Path:
        """Where image shard paths are relative to: the run's store, also when the run was moved."""
        recorded = Path(self.manifest.get("store_dir") or self.run_dir / "store")
        return recorded if recorded.is_dir() else self.run_dir / "store"

    def thumbnail(self, ref: Any) -> str | None:
        from curate.images import ImageOutside

        try:
            return thumbnail(ref, self.store_dir, self.image_dirs)
        except ImageOutside as exc:
            self.images_outside[repr(ref)] = exc.path
            return None

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
