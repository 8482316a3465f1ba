"""``exact_dedup``: one row per distinct key, with the survivor chosen by a keep policy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import polars as pl
from pydantic import Field, model_validator

from curate.caseless import fold_sql, register_fold
from curate.duck import create_input_view, missing_number, quote, stream
from curate.params import Params
from curate.schema import DROP_REASON, DUPLICATE_OF, UID, Schema
from curate.shards import in_shard_order
from curate.step import Step, StepContext, TableInput


class ExactDedupParams(Params):
    columns: list[str] = Field(..., min_length=1, description="the key: rows equal on all of these are duplicates")
    keep: Literal["first", "last", "max", "min"] = "first"
    order_by: str | None = Field(None, description="with keep max/min: the column to compare")
    ignore_case: bool = Field(False, description="compare text columns caselessly: Unicode full case "
                              "folding after canonical normalization ('straße' = 'STRASSE', 'café' = "
                              "'CAFE\u0301'); no locale's rules, so 'İSTANBUL' folds to 'i\u0307stanbul', "
                              "not 'istanbul'")
    nulls_equal: bool = Field(False, description="treat NULL keys as equal (default: never duplicates)")

    @model_validator(mode="after")
    def _order(self) -> ExactDedupParams:
        if self.keep in ("max", "min") and not self.order_by:
            raise ValueError(f"keep '{self.keep}' needs 'order_by': the column whose {self.keep} survives")
        if self.keep in ("first", "last") and self.order_by:
            raise ValueError("'order_by' only applies to keep max/min")
        return self


class ExactDedup(Step):
    """Ties under max/min go to the earliest row, so the survivor is always deterministic."""

    name = "exact_dedup"
    description = "drop exact duplicates on any columns (keep first/last/max/min)"
    scope = "table"
    drops_rows = True
    version = "2"  # 2: ignore_case is canonical caseless matching (curate.caseless), was DuckDB's lower()
    Params = ExactDedupParams

    def input_columns(self) -> Schema:
        cols: Schema = {c: pl.Null for c in self.params.columns}
        if self.params.order_by:
            cols[self.params.order_by] = pl.Null
        return cols

    def _key(self, column: str, schema: Schema) -> str:
        expr = quote(column)
        if self.params.ignore_case and schema.get(column) in (pl.Utf8, pl.String):
            expr = fold_sql(expr)
        return expr

    def _duplicates_sql(self, schema: Schema) -> str:
        """The rows to drop, with their survivor's uid, ordered by (_file, _row): ``_file`` is the
        shard's position in the input's files, which are in path order (the input view's order).

        Narrow on purpose: only keys, uid and position go through the aggregate and the window,
        and only rows whose key (hash) repeats reach the window. The wide rows never go through DuckDB:
        :meth:`process_table` reads them shard by shard, already in order.
        """
        p = self.params
        keys = [self._key(c, schema) for c in p.columns]
        aliases = [f"_k{i}" for i in range(len(keys))]
        selected = ", ".join(f"{k} AS {a}" for k, a in zip(keys, aliases))
        if p.order_by:  # a NaN orders as no value (as dedup_exact's keep does), not as the largest
            column = quote(p.order_by)
            nan_is_null = schema[p.order_by].is_float() if p.order_by in schema else False  # Float16 too
            selected += f", CASE WHEN NOT {missing_number(column)} THEN {column} END AS _order" if nan_is_null \
                else f", {column} AS _order"
        order = {
            "first": "_file, _row",
            "last": "_file DESC, _row DESC",
            "max": "_order DESC NULLS LAST, _file, _row",
            "min": "_order ASC NULLS LAST, _file, _row",
        }[p.keep]
        # Rows with a NULL in the key are never duplicates unless nulls_equal; with it, NULLs
        # match each other (hash() and PARTITION BY treat them as equal).
        # (A folded value is NULL exactly where the value is: the plain column is tested, not the fold.)
        nulls = " OR ".join(f"{quote(c)} IS NULL" for c in p.columns)
        where = "" if p.nulls_equal else f"WHERE NOT ({nulls})"
        partition = ", ".join(aliases)
        if keys != [quote(c) for c in p.columns]:
            return self._folded_duplicates_sql(keys, selected, where, partition, order)
        # Candidates are rows whose key's 64-bit hash repeats: a superset of the duplicates
        # (a collision only adds a candidate; the window partitions by the key itself), found
        # with an aggregate over 8-byte hashes instead of over the keys.
        return f"""
            WITH keyed AS NOT MATERIALIZED (
                SELECT _file, _row, {UID} AS _uid, {selected}, hash({partition}) AS _hash FROM input {where}
            ), repeated AS (
                SELECT _hash FROM keyed GROUP BY _hash HAVING count(*) > 1
            ), ranked AS (
                SELECT _file, _row,
                       row_number() OVER w AS _rank,
                       first_value(_uid) OVER w AS _survivor
                FROM keyed SEMI JOIN repeated USING (_hash)
                WINDOW w AS (PARTITION BY {partition} ORDER BY {order})
            )
            SELECT _file, _row, _survivor FROM ranked WHERE _rank > 1 ORDER BY _file, _row
        """

    @staticmethod
    def _folded_duplicates_sql(keys: list[str], selected: str, where: str, partition: str, order: str) -> str:
        """:meth:`_duplicates_sql` where a key is folded (``ignore_case``), which costs a call into
        Python per non-ASCII value: the hashes are kept (``MATERIALIZED``, 20 bytes a row), so
        every value is folded once for its hash and once more only where the hash repeats; the
        plain query reads the keys twice (once per use of ``keyed``), which folded each value twice."""
        return f"""
            WITH hashed AS MATERIALIZED (
                SELECT _file, _row, hash({", ".join(keys)}) AS _hash FROM input {where}
            ), repeated AS (
                SELECT _hash FROM hashed GROUP BY _hash HAVING count(*) > 1
            ), candidates AS (
                SELECT _file, _row FROM hashed SEMI JOIN repeated USING (_hash)
            ), keyed AS (
                SELECT _file, _row, {UID} AS _uid, {selected}
                FROM input SEMI JOIN candidates USING (_file, _row)
            ), ranked AS (
                SELECT _file, _row,
                       row_number() OVER w AS _rank,
                       first_value(_uid) OVER w AS _survivor
                FROM keyed
                WINDOW w AS (PARTITION BY {partition} ORDER BY {order})
            )
            SELECT _file, _row, _survivor FROM ranked WHERE _rank > 1 ORDER BY _file, _row
        """

    def process_table(self, table: TableInput, ctx: StepContext) -> Iterator[pl.DataFrame]:
        if not table.files:
            return
        con = ctx.duckdb()
        try:
            if self.params.ignore_case:
                register_fold(con)
            # Shards in their order (the input view's), numbered so: ``_file``.
            files = in_shard_order(table.files)
            create_input_view(con, TableInput(files, table.schema), file_index=True)
            duplicates = _ByShard(stream(con, self._duplicates_sql(table.schema)))
            for index, path in enumerate(files):
                frame = pl.read_parquet(path)
                drops = duplicates.take(index)
                if frame.height == 0:
                    continue
                dropped = pl.repeat(False, frame.height, dtype=pl.Boolean, eager=True)
                survivor = pl.repeat(None, frame.height, dtype=pl.Utf8, eager=True)
                if drops.height:
                    dropped = dropped.scatter(drops["_row"], True)
                    survivor = survivor.scatter(drops["_row"], drops["_survivor"].cast(pl.Utf8))
                yield frame.with_columns(
                    pl.when(dropped).then(pl.lit(self.label)).otherwise(pl.lit(None, pl.Utf8)).alias(DROP_REASON),
                    survivor.alias(DUPLICATE_OF),
                )
            duplicates.finish()
        finally:
            con.close()


class _ByShard:
    """Rows ordered by (_file, _row), handed out one shard at a time, in that order."""

    def __init__(self, frames: Iterator[pl.DataFrame]):
        self.frames = frames
        self.pending: pl.DataFrame | None = None

    def take(self, shard: int) -> pl.DataFrame:
        parts = []
        while True:
            if self.pending is None or self.pending.height == 0:
                self.pending = next(self.frames, None)
                if self.pending is None:
                    break
            mine = self.pending["_file"] == shard
            count = int(mine.sum())
            if count == 0:
                break
            if not mine.head(count).all():
                raise RuntimeError(f"duplicates of shard {shard} are not contiguous: the shard order disagrees")
            parts.append(self.pending.head(count))
            self.pending = self.pending.slice(count)
            if self.pending.height:
                break
        return pl.concat(parts) if parts else pl.DataFrame(schema={"_file": pl.Int32, "_row": pl.Int64,
                                                                   "_survivor": pl.Utf8})

    def finish(self) -> None:
        left = (self.pending.height if self.pending is not None else 0) + sum(f.height for f in self.frames)
        if left:
            raise RuntimeError(f"{left} duplicates belong to no input shard: the shard order disagrees")
