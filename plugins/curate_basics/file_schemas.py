"""The one schema of a source's files: types may differ only where no value changes."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from curate.errors import SourceError


def common_schema(schemas: list[tuple[Path, dict[str, pl.DataType]]],
                  carried: frozenset[str] | None = None) -> dict[str, pl.DataType]:
    """The one schema of a source's files. Types may differ only where no value changes: numbers
    of different widths (read as their common type) and all-null columns; anything else is an
    error naming the first file and one that differs from it. ``carried``: the columns the run
    reads (``source.keep``), the only ones that must agree; the others are left out."""
    if carried is not None:
        schemas = [(path, {c: d for c, d in schema.items() if c in carried}) for path, schema in schemas]
    first_path, schema = schemas[0]
    schema = dict(schema)
    for path, other in schemas[1:]:
        problems = []
        missing = [c for c in schema if c not in other]
        extra = [c for c in other if c not in schema]
        if missing:
            problems.append(f"{path} has no column {', '.join(map(repr, missing))}")
        if extra:
            problems.append(f"{path} has column {', '.join(map(repr, extra))}, which {first_path} has not")
        for column, dtype in other.items():
            common = _common_type(schema.get(column), dtype)
            if column in schema and common is None:
                problems.append(f"column {column!r} is {schema[column]} in {first_path} but {dtype} in {path}")
            elif common is not None:
                schema[column] = common
        if problems:
            raise SourceError(
                f"the files of the source disagree: {'; '.join(problems)}",
                "every file of one source needs the same columns with the same types: rewrite the odd file, "
                "or move it out of source.path" + ("" if carried is not None else
                "; or name the extra columns to carry with source.keep: [...] (files may then differ in "
                "the others)"),
            )
    return schema


def _common_type(a: pl.DataType | None, b: pl.DataType) -> pl.DataType | None:
    if a is None or a == b or b == pl.Null:
        return a
    if a == pl.Null:
        return b
    if a.is_numeric() and b.is_numeric():
        common = pl.concat([pl.DataFrame(schema={"x": a}), pl.DataFrame(schema={"x": b})],
                           how="vertical_relaxed").schema["x"]
        # Int64 with UInt64 is Int128 to Polars, which DuckDB and Arrow's C interface do not take
        # (it failed as "unsupported format string '_pli128'"); a whole number read as a float
        # is checked when the file is read (curate.ingest._refuse_rounded)
        return None if common in (pl.Int128, pl.UInt128) and a not in (pl.Int128, pl.UInt128) else common
    return None
