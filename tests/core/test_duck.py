"""``curate.duck.stream``: a query's rows in order, in frames of about ``batch_rows`` rows."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.duck import connect, literal, stream


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(0, 30), min_size=1, max_size=25), batch_rows=st.integers(1, 60))
def test_stream_gathers_small_batches_into_frames_of_batch_rows(tmp_path_factory, sizes, batch_rows):
    """DuckDB ends a batch at each file's end: 2,000 files of 10 rows came as 2,000 frames, and each
    frame's fixed cost made a 20,000-row source 16 s. Every frame but the last now has at least
    ``batch_rows`` rows, and the rows are the query's, in its order."""
    base = tmp_path_factory.mktemp("stream")
    paths = []
    for i, size in enumerate(sizes):
        path = base / f"f{i:03d}.parquet"
        pl.DataFrame({"i": [i] * size, "k": list(range(size))}, schema={"i": pl.Int64, "k": pl.Int64}).write_parquet(path)
        paths.append(literal(path.as_posix()))
    con = connect()
    query = f"SELECT i, k FROM read_parquet([{', '.join(paths)}])"
    frames = list(stream(con, query, batch_rows))
    assert all(f.height >= batch_rows for f in frames[:-1]) and all(f.height for f in frames)
    assert all(f.height < batch_rows + max(sizes) + 2048 for f in frames)
    rows = [r for f in frames for r in f.iter_rows()]
    assert rows == [(i, k) for i, size in enumerate(sizes) for k in range(size)]
