"""A Parquet file whose footer reads and whose pages do not is named, not an internal error."""

from __future__ import annotations

import struct
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.errors import SourceError
from curate.testing import run_spec


def cut_in_the_middle(path: Path) -> None:
    """Half of the data gone, the footer kept (a partial upload or copy)."""
    pq.write_table(pa.table({"url": [f"https://x/{i}" for i in range(5000)], "alt_text": [f"t{i}" for i in range(5000)]}),
                   path, use_dictionary=False, row_group_size=1000)
    data = path.read_bytes()
    footer = struct.unpack("<I", data[-8:-4])[0]
    body, tail = data[: -8 - footer], data[-8 - footer:]
    path.write_bytes(body[: len(body) // 2] + tail)


def says_rows(path: Path, rows: int) -> None:
    """A footer whose row groups say ``rows`` rows while the pages hold 1,000."""
    pq.write_table(pa.table({"url": [f"https://x/{i}" for i in range(1000)], "alt_text": ["t"] * 1000}), path,
                   use_dictionary=False)
    data = path.read_bytes()
    length = struct.unpack("<I", data[-8:-4])[0]
    footer = data[-8 - length:-8].replace(b"\x16" + _varint(1000 << 1), b"\x16" + _varint(rows << 1), 2)
    path.write_bytes(data[:-8 - length] + footer + struct.pack("<I", len(footer)) + b"PAR1")


@pytest.mark.parametrize("damage, said", [
    (cut_in_the_middle, "Prefetch registered for bytes outside file"),
    (lambda path: says_rows(path, 10), "metadata is corrupt. Column has 10 values but row group has 1000 rows"),
])
def test_a_parquet_file_whose_footer_reads_and_data_does_not_is_named(pm, workdir, damage, said):
    """It was 'internal error … please report it' naming no file (hostile-tables probe)."""
    (workdir / "d").mkdir()
    pl.DataFrame({"url": ["https://ok/1.jpg"], "alt_text": ["fine"]}).write_parquet(workdir / "d" / "a.parquet")
    damage(workdir / "d" / "b.parquet")
    with pytest.raises(SourceError) as caught:
        run_spec({"source": {"path": "d"}}, workdir, pm=pm)
    assert str(caught.value).startswith(f"could not read {workdir / 'd' / 'b.parquet'}: ") and said in str(caught.value)
    assert "cut short or damaged: write or copy it again" in caught.value.hint


def test_a_damaged_file_duckdb_does_not_name_is_found_by_reading_each(pm, workdir):
    says_rows(workdir / "b.parquet", 10)  # read alone, DuckDB names no file: "Parquet metadata is corrupt…"
    with pytest.raises(SourceError) as caught:
        run_spec({"source": {"path": "b.parquet"}}, workdir, pm=pm)
    assert str(caught.value).startswith(f"could not read {workdir / 'b.parquet'}: ")


def test_a_footer_claiming_rows_past_the_budget_says_so_instead_of_a_shard_size(pm, workdir, write_spec):
    """'set run.shard_size to 1 or less' came back with shard_size 1 (hostile-tables probe)."""
    from curate.errors import SpecError
    from curate.plan import make_plan
    from curate.spec import load_spec

    path = workdir / "a.parquet"
    pq.write_table(pa.table({"url": ["https://x/1"], "alt_text": ["t"]}), path, use_dictionary=False)
    data = path.read_bytes()
    length = struct.unpack("<I", data[-8:-4])[0]
    size = pq.read_metadata(path).row_group(0).total_byte_size
    footer = data[-8 - length:-8].replace(b"\x16" + _varint(size << 1), b"\x16" + _varint(10**15 << 1), 1)
    path.write_bytes(data[:-8 - length] + footer + struct.pack("<I", len(footer)) + b"PAR1")
    assert pq.read_metadata(path).row_group(0).total_byte_size == 10**15
    spec_path = write_spec({"source": {"path": "a.parquet"}, "run": {"shard_size": 1}})
    with pytest.raises(SpecError) as caught:
        make_plan(load_spec(spec_path), pm, spec_path.parent / "run")
    assert "take 1,000,000,000,000,000 bytes each unpacked (its footer says)" in str(caught.value)
    assert "the footer is damaged" in str(caught.value) and "shard_size to" not in str(caught.value)


def _varint(n: int) -> bytes:
    out = b""
    while True:
        low, n = n & 0x7F, n >> 7
        if not n:
            return out + bytes([low])
        out += bytes([low | 0x80])
