"""``curate.duck.stream``: a query's rows in order, in frames of about ``batch_rows`` rows."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest
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


@pytest.mark.parametrize("untrusted", [False, True])
def test_a_shard_connection_keeps_to_the_runs_memory_limit_and_spill_folder(tmp_path, untrusted):
    """Per-shard SQL (filter, sql per_shard) took DuckDB's default of 80 % of the machine's memory
    whatever run.memory_limit said, and would have spilled to .tmp in the working directory."""
    from curate.duck import shard_connection
    from curate.step import StepContext

    ctx = StepContext(tmp_path, "f", 0, tmp_path, memory_limit="64MB")
    con = shard_connection(untrusted, ctx)
    limit, spill = con.sql("SELECT current_setting('memory_limit'), current_setting('temp_directory')").fetchall()[0]
    assert limit == "61.0 MiB" and spill == (tmp_path / "tmp" / "duckdb").as_posix()
    assert shard_connection(untrusted, ctx) is con and shard_connection(untrusted) is con
    other = StepContext(tmp_path, "f", 0, tmp_path, memory_limit="128MB")
    assert shard_connection(untrusted, other).sql("SELECT current_setting('memory_limit')").fetchall()[0][0] == \
        "122.0 MiB"
    if untrusted:
        with pytest.raises(duckdb.Error, match="disabled"):
            shard_connection(untrusted, other).sql("SELECT * FROM read_csv('/etc/passwd')").fetchall()
