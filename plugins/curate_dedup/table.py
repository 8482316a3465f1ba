"""Reading the few columns a dedup needs, and writing every row back out in input order with the
dedup's verdict attached, one input shard at a time (memory bounded by a shard, not the table)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl

from curate.schema import DROP_REASON, DUPLICATE_OF, UID
from curate.step import TableInput
from curate_dedup.groups import Groups

GROUP = "dup_group"  # on kept and dropped rows: the duplicate group, null for rows without one
SIMILARITY = "dup_similarity"  # on dropped rows: cosine similarity to the row that stayed


def read_columns(table: TableInput, columns: list[str]) -> pl.DataFrame:
    """``columns`` of every row, in input order."""
    wanted = list(dict.fromkeys([UID, *columns]))
    return table.scan().select(wanted).collect()


def verdict(keys: pl.DataFrame, groups: Groups, reason: str | pl.Series,
            similarity: np.ndarray | None = None) -> pl.DataFrame:
    """Per-row columns for a dedup: drop reason and survivor uid on dropped rows, group id on
    grouped rows, and (semantic dedups) the similarity to the survivor."""
    dropped = pl.col("_dropped")
    frame = pl.DataFrame({
        "_dropped": groups.dropped,
        "_group": pl.Series(groups.group, dtype=pl.Int64),
        "_survivor": keys[UID].gather(groups.survivor),
        "_reason": reason if isinstance(reason, pl.Series) else pl.repeat(reason, keys.height, eager=True),
    })
    columns = [
        pl.when(pl.col("_group") >= 0).then(pl.col("_group")).alias(GROUP),
        pl.when(dropped).then(pl.col("_reason").cast(pl.Utf8)).alias(DROP_REASON),
        pl.when(dropped).then(pl.col("_survivor")).alias(DUPLICATE_OF),
    ]
    if similarity is not None:
        frame = frame.with_columns(pl.Series("_similarity", np.asarray(similarity, dtype=np.float32)))
        columns.append(pl.when(dropped).then(pl.col("_similarity")).alias(SIMILARITY))
    return frame.select(columns)


def annotate(table: TableInput, extra: pl.DataFrame) -> Iterator[pl.DataFrame]:
    """Every input row, in order, with ``extra``'s columns (one row per input row) beside it.
    Input columns that ``extra`` also has are replaced (a second dedup rewrites ``dup_group``)."""
    offset = 0
    for path in table.files:
        frame = pl.read_parquet(path)
        part = extra.slice(offset, frame.height)
        offset += frame.height
        yield frame.drop([c for c in part.columns if c in frame.columns]).hstack(part)
    if offset != extra.height:
        raise RuntimeError(f"the input changed while the step ran ({offset} rows read, {extra.height} expected)")
