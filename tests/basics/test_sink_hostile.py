"""File sinks against names and cells from strangers: an output's file name is a name, not a
pattern; and CSV cells are written verbatim, as pandas, DuckDB and Polars write them (formula
text included: see the CSV note in curate_basics' README)."""

from __future__ import annotations

import polars as pl

from curate.testing import run_spec
from tests.conftest import sample_table

# What a spreadsheet would run as a formula, and what a careless CSV writer splits or drops.
CELLS = ['=HYPERLINK("http://evil.example","x")', "+cmd|' /C calc'!A0", "-1+1", "@SUM(1)", "\tcell",
         "\rcell", "a\nb", '"quoted"', "a,b", "nul\x00x", "", None]


def test_output_file_names_with_glob_characters_are_written_and_counted(pm, workdir):
    spec = {"source": {"path": "data.parquet"},
            "outputs": [{"format": "parquet", "path": "out[1]*?.parquet"},
                        {"format": "jsonl", "path": "o[2].jsonl"}]}
    manifest = run_spec(spec, workdir, tables={"data.parquet": sample_table(10)}, pm=pm)
    assert [o["rows"] for o in manifest["outputs"]] == [10, 10]
    assert pl.read_parquet(workdir / "run" / "out[1]*?.parquet", glob=False).height == 10


def test_csv_cells_are_written_verbatim_and_read_back_equal(pm, workdir):
    urls = [f"https://example.com/{i}.jpg" for i in range(len(CELLS))]
    table = pl.DataFrame({"url": urls, "alt_text": CELLS})
    run_spec({"source": {"path": "data.parquet"}, "outputs": [{"format": "csv", "path": "out.csv"}]},
             workdir, tables={"data.parquet": table}, pm=pm)
    back = pl.read_csv(workdir / "run" / "out.csv", infer_schema=False)
    assert back["alt_text"].to_list() == CELLS
