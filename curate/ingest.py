"""Turning a source into the first step's table: canonical columns, a stable uid, fixed shards.

The uid is a hash of the row's content (``url`` and ``alt_text`` by default). Rows with identical
content are told apart by their occurrence number in source order, so uids are unique, stable
across re-runs and independent of shard size.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import polars as pl

from curate.duck import literal, stream
from curate.errors import SourceError
from curate.schema import ALT_TEXT, UID, URL, Schema
from curate.shards import ShardWriter, write_parquet_atomic
from curate.source import Source
from curate.spec import SourceSpec
from curate.step import StepContext

REQUIRED = (URL, ALT_TEXT)
HIDDEN = ("_file", "_row")


def canonical_schema(raw: Schema, spec: SourceSpec) -> tuple[Schema, list[tuple[tuple, str, str | None]]]:
    """The table's schema after mapping; problems as (loc, message, hint)."""
    problems: list[tuple[tuple, str, str | None]] = []
    mapping = dict(spec.columns)  # canonical → source
    for canonical, column in mapping.items():
        if column not in raw:
            problems.append((("source", "columns", canonical), f"the source has no column '{column}'",
                             f"source columns: {', '.join(raw) or 'none'}"))
    mapped_sources = set(mapping.values())
    schema: Schema = {}
    for canonical in REQUIRED:
        column = mapping.get(canonical, canonical)
        if column in raw:
            schema[canonical] = raw[column]
        elif canonical not in mapping:
            problems.append((("source", "columns"), f"the source has no '{canonical}' column",
                             f"map one: columns: {{{canonical}: <source column>}}; source columns: "
                             f"{', '.join(raw) or 'none'}"))
    for canonical, column in mapping.items():
        if canonical not in REQUIRED and column in raw:
            schema[canonical] = raw[column]
    extras = [c for c in raw if c not in mapped_sources and c not in schema]
    if spec.keep is not None:
        for column in spec.keep:
            if column not in raw:
                problems.append((("source", "keep"), f"the source has no column '{column}' to keep",
                                 f"source columns: {', '.join(raw) or 'none'}"))
        extras = [c for c in extras if c in spec.keep]
    for column in extras:
        schema[column] = raw[column]
    for column in spec.uid_columns:
        # A missing url/alt_text was reported above with how to map it; saying it again here
        # would only double the list.
        if column not in schema and column not in REQUIRED:
            problems.append((("source", "uid_columns"), f"uid column '{column}' is not in the table",
                             f"columns: {', '.join(schema)}"))
    for column in schema:
        if column.startswith("_"):
            problems.append((("source",), f"column '{column}' starts with '_', reserved for curate",
                             "rename it with source.columns"))
    # uid is always text and always first, also when mapped from a source column of another type
    # (`columns: {uid: id}` with integer ids kept Int64, which every step reading uid rejected).
    schema = {UID: pl.Utf8, **{k: v for k, v in schema.items() if k != UID}}
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
) -> dict[str, Any]:
    """Read every source frame, add uids, write shards into ``out_dir``. Returns stats."""
    staging = ctx.run_dir / "tmp" / f"ingest-{out_dir.name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    files = []
    for file_index, frame in enumerate(source.scan()):
        staged = staging / f"part-{file_index:05d}.parquet"
        try:
            raw = dict(frame.collect_schema())
            missing = _missing_columns(raw, spec, schema)
            if missing:
                raise SourceError(
                    f"source part {file_index} has no column {missing[0]!r}, which the first part has",
                    f"every file of a source needs the same columns; part {file_index} has: {', '.join(raw)}",
                )
            exprs = _select_expressions(raw, spec, schema)
            (
                frame.with_row_index("_row")
                .select([pl.lit(file_index, dtype=pl.Int32).alias("_file"), pl.col("_row").cast(pl.Int64), *exprs])
                .sink_parquet(staged)
            )
        except (pl.exceptions.PolarsError, OSError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SourceError(f"could not read source part {file_index}: {first_line}",
                              "check the file's format, its column types and the source.columns mapping") from None
        files.append(staged)

    writer = ShardWriter(None, out_dir, shard_size, None)
    con = ctx.duckdb()
    has_uid = _source_has_uid(files)  # a source may bring its own unique ids
    if files:
        relation = "read_parquet([" + ", ".join(literal(f.as_posix()) for f in files) + "])"
        columns = [c for c in schema if c != UID]
        quoted = ", ".join(f'"{c}"' for c in columns)
        if has_uid:
            query = f"SELECT uid, {quoted} FROM {relation} ORDER BY _file, _row"
        else:
            parts = ", ".join(f"coalesce(CAST(\"{c}\" AS VARCHAR), '')" for c in spec.uid_columns)
            nulls = " || ".join(f"CAST((\"{c}\" IS NULL)::INTEGER AS VARCHAR)" for c in spec.uid_columns)
            content = f"concat_ws(chr(31), {parts}) || chr(30) || {nulls}"
            query = f"""
                WITH hashed AS (
                    SELECT *, {content} AS _content FROM {relation}
                ), numbered AS (
                    SELECT *, row_number() OVER (PARTITION BY _content ORDER BY _file, _row) AS _occurrence
                    FROM hashed
                )
                SELECT substr(md5(CASE WHEN _occurrence = 1 THEN _content
                                       ELSE _content || chr(29) || _occurrence::VARCHAR END), 1, 16) AS uid,
                       {quoted}
                FROM numbered ORDER BY _file, _row
            """
        for frame in stream(con, query, min(shard_size, 100_000)):
            writer.add(_cast(frame, schema))
            ctx.advance(frame.height)
    shards = writer.close(empty_schema=schema)
    if has_uid:
        _check_unique(con, out_dir)
    con.close()
    shutil.rmtree(staging, ignore_errors=True)
    return {"rows_in": writer.rows_in, "rows_out": writer.rows_out, "shards": shards, "dropped": {}}


def _cast(frame: pl.DataFrame, schema: Schema) -> pl.DataFrame:
    casts = [pl.col(n).cast(d, strict=False) for n, d in schema.items() if n in frame.columns and frame.schema[n] != d]
    return frame.with_columns(casts) if casts else frame


def _source_has_uid(files: list[Path]) -> bool:
    return bool(files) and UID in pl.read_parquet_schema(files[0])


def _check_unique(con: Any, out_dir: Path) -> None:
    glob = literal((out_dir / "data" / "*.parquet").as_posix())
    count, distinct = con.sql(f"SELECT count(*), count(DISTINCT uid) FROM read_parquet({glob})").fetchall()[0]
    if count != distinct:
        raise SourceError(
            f"the source's 'uid' column has {count - distinct} duplicate values",
            "uids must be unique: drop the column from the source to let curate derive them",
        )


__all__ = ["canonical_schema", "ingest", "write_parquet_atomic"]
