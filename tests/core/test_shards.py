from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.schema import DROP_REASON
from curate.shards import ShardWriter, compacted, iter_dropped_files, iter_shard_files, split_dropped
from curate.testing.strategies import tables


@st.composite
def frames(draw):
    """A stream of frames as a table-scope step yields them: any sizes, some rows marked dropped."""
    sizes = draw(st.lists(st.integers(0, 12), max_size=6))
    out, n = [], 0
    for size in sizes:
        reasons = draw(st.lists(st.sampled_from([None, None, "dup", "short"]), min_size=size, max_size=size))
        out.append(pl.DataFrame({"uid": pl.Series([f"u{n + i}" for i in range(size)], dtype=pl.Utf8),
                                 "x": pl.Series(list(range(n, n + size)), dtype=pl.Int64),
                                 DROP_REASON: pl.Series(reasons, dtype=pl.Utf8)}))
        n += size
    return out


@settings(max_examples=40)
@given(stream=frames(), shard_size=st.integers(1, 9))
def test_the_writer_makes_full_shards_in_order_and_keeps_every_dropped_row(tmp_path, stream, shard_size):
    out = tmp_path / str(len(list(tmp_path.iterdir())))
    writer = ShardWriter(None, out, shard_size, None)
    for frame in stream:
        writer.add(frame)
    shards = writer.close(empty_schema={"uid": pl.Utf8, "x": pl.Int64})

    files = iter_shard_files(out)
    assert len(files) == shards >= 1
    kept = [pl.read_parquet(f) for f in files]
    assert all(f.height == shard_size for f in kept[:-1]) and kept[-1].height <= shard_size
    everything = pl.concat(stream) if stream else pl.DataFrame(schema={"uid": pl.Utf8, "x": pl.Int64,
                                                                         DROP_REASON: pl.Utf8})
    expected_kept, expected_dropped = split_dropped(everything)
    assert pl.concat(kept)["uid"].to_list() == expected_kept["uid"].to_list()
    assert DROP_REASON not in kept[0].columns
    dropped = pl.concat([pl.read_parquet(f) for f in iter_dropped_files(out)], how="diagonal_relaxed")
    assert dropped["uid"].to_list() == expected_dropped["uid"].to_list()
    assert writer.rows_in == everything.height and writer.rows_out == expected_kept.height
    assert sum(writer.dropped.values()) == expected_dropped.height
    assert not list(out.rglob(".*.tmp"))


@settings(max_examples=60, deadline=None)
@given(table=tables(max_rows=30), keep=st.lists(st.booleans(), min_size=30, max_size=30),
       extra=st.sampled_from([None, pl.List(pl.Int64), pl.Struct({"a": pl.Int64}), pl.Categorical]))
def test_a_compacted_part_has_the_same_values_and_dtypes(table, keep, extra):
    if extra is not None:
        column = {pl.List(pl.Int64): [[i, i + 1] for i in range(table.height)],
                  pl.Struct({"a": pl.Int64}): [{"a": i} for i in range(table.height)],
                  pl.Categorical: [str(i % 3) for i in range(table.height)]}[extra]
        table = table.with_columns(pl.Series("extra", column, dtype=extra))
    part = table.filter(pl.Series(keep[: table.height], dtype=pl.Boolean))
    copied = compacted(part, table.height)
    assert copied.schema == part.schema
    assert copied.equals(part, null_equal=True)


def test_a_small_compacted_part_no_longer_holds_its_parents_text():
    """A writer holds small filtered parts until a shard fills: each must not keep its parent's
    text buffers alive (metadata_balance's RSS grew 170 bytes per input row before)."""
    parent = pl.DataFrame({"uid": [f"u{i}" for i in range(20_000)],
                           "url": [f"https://example.com/a/long/path/{i}/image.jpg?q={'x' * 40}" for i in range(20_000)]})
    part = parent.filter(pl.int_range(pl.len()) % 100 == 0)

    def text_bytes(frame: pl.DataFrame) -> int:
        array = frame["url"].to_arrow(compat_level=pl.CompatLevel.newest())
        return sum(buffer.size for buffer in array.buffers() if buffer is not None)

    assert text_bytes(part) > 500_000  # the filter's 200 rows point into the parent's 1.6 MB
    assert text_bytes(compacted(part, parent.height)) < 40_000  # their own ~20 kB
    larger = parent.head(15_000)
    assert compacted(larger, parent.height) is larger  # over half its parent: kept as it is
