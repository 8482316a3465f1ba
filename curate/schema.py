"""Column types shared by steps: a schema is an ordered ``{name: polars dtype}``.

Images are never copied into tables. A row points at its image with an ``image`` struct
(``shard``: the file that holds it, ``key``: the member inside it), written by the download
step and read by model steps through :func:`curate.images.open_images`.
"""

from __future__ import annotations

import polars as pl

Schema = dict[str, pl.DataType]

UID = "uid"
URL = "url"
ALT_TEXT = "alt_text"

# Columns the engine adds to a step's output to say "this row was dropped, and why".
DROP_REASON = "_drop_reason"
DUPLICATE_OF = "_duplicate_of"
ENGINE_COLUMNS = (DROP_REASON, DUPLICATE_OF)

Image = pl.Struct({"shard": pl.Utf8, "key": pl.Utf8})


def case_clashes(columns: list[str] | Schema) -> list[tuple[str, str]]:
    """Pairs of column names that differ only by case: DuckDB, which runs SQL over every step's
    shards, treats them as one column (and fails on a table that has both)."""
    first: dict[str, str] = {}
    clashes = []
    for column in columns:
        seen = first.setdefault(column.casefold(), column)
        if seen != column:
            clashes.append((seen, column))
    return clashes


def dtype_name(dtype: pl.DataType) -> str:
    if dtype == Image:
        return "Image"
    return str(dtype)


def describe(schema: Schema) -> dict[str, str]:
    return {name: dtype_name(dtype) for name, dtype in schema.items()}


def compatible(actual: pl.DataType, declared: pl.DataType) -> bool:
    """Whether a column of type ``actual`` satisfies a step that declared ``declared``.

    ``pl.Utf8`` and ``pl.String`` are the same; an integer of any width satisfies ``pl.Int64``
    and any float satisfies ``pl.Float64`` so a step need not care about storage width.
    """
    if actual == declared:
        return True
    if declared in (pl.Int64,) and actual.is_integer():
        return True
    if declared in (pl.Float64, pl.Float32) and (actual.is_float() or actual.is_integer()):
        return True
    if declared == pl.Null or actual == pl.Null:
        return True
    return False
