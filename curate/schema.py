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


def restorable(actual: pl.DataType, declared: pl.DataType) -> bool:
    """Whether ``actual`` is ``declared`` as DuckDB hands it back, so that a cast restores it without
    loss: DuckDB reads Parquet timestamps as microseconds in UTC and durations as microseconds, has
    no fixed-size arrays and no categoricals. A step that streams whole rows through DuckDB (``sample``
    by count, a table ``sql``) gave a millisecond timestamp, a zone, an embedding array or a
    categorical back in DuckDB's type, and the engine took that for the plugin's bug."""
    if actual == declared:
        return True
    if isinstance(declared, pl.Datetime) and isinstance(actual, pl.Datetime):
        return (declared.time_zone is None) == (actual.time_zone is None)
    if isinstance(declared, pl.Duration) and isinstance(actual, pl.Duration):
        return True
    if isinstance(declared, (pl.Categorical, pl.Enum)):
        return actual in (pl.Utf8, pl.String) or isinstance(actual, (pl.Categorical, pl.Enum))
    if isinstance(declared, (pl.Array, pl.List)) and isinstance(actual, (pl.Array, pl.List)):
        return restorable(actual.inner, declared.inner)
    if isinstance(declared, pl.Struct) and isinstance(actual, pl.Struct):
        ours, theirs = {f.name: f.dtype for f in declared.fields}, {f.name: f.dtype for f in actual.fields}
        return list(ours) == list(theirs) and all(restorable(theirs[n], d) for n, d in ours.items())
    return compatible(actual, declared)


def unsupported_column(schema: dict[str, pl.DataType]) -> tuple[str, str, str] | None:
    """The first column whose type no step of curate can carry (DuckDB and Polars' Arrow bridge
    between them have no 128-bit integers, no decimals over 38 digits): (column, what, fix).
    They stopped the run in the source with an internal error."""
    for column, dtype in schema.items():
        for inner in nested_types(dtype):
            if inner in (pl.Int128, getattr(pl, "UInt128", pl.Int128)):
                return (column, f"holds {inner} numbers", "write them as Int64/UInt64 if they fit, or as text "
                        "(in JSON Lines, numbers outside the 64-bit range become Int128: quote them)")
            if isinstance(inner, pl.Decimal) and (inner.precision or 0) > 38:
                return (column, f"is a decimal of {inner.precision} digits (at most 38 are read)",
                        "write it as Decimal(38, s), a float or text")
    return None


def nested_types(dtype: pl.DataType) -> list[pl.DataType]:
    """``dtype`` and every type inside it (a list's or array's items, a struct's fields), at any depth."""
    if isinstance(dtype, (pl.List, pl.Array)):
        return [dtype, *nested_types(dtype.inner)]
    if isinstance(dtype, pl.Struct):
        return [dtype, *(d for f in dtype.fields for d in nested_types(f.dtype))]
    return [dtype]
