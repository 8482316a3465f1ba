from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.schema import DROP_REASON
from curate.shards import ShardWriter, iter_dropped_files, iter_shard_files, split_dropped


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
