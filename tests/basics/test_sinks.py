from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from curate.testing import run_spec
from curate.testing.runner import read_step_output
from tests.conftest import sample_table


def test_every_sink_writes_the_rows_of_the_step_it_names(pm, workdir):
    spec = {
        "source": {"path": "data.parquet"},
        "steps": [
            {"step": "filter", "name": "scored", "params": {"where": "score >= 0.3"}},
            {"step": "select", "params": {"columns": ["url", "alt_text"]}},
        ],
        "outputs": [
            {"format": "parquet", "path": "out/final.parquet"},
            {"format": "jsonl", "path": "out/final.jsonl"},
            {"format": "csv", "path": "out/scored.csv", "step": "scored", "params": {"columns": ["uid", "score"]}},
            {"format": "uids", "path": "out/uids.npy"},
        ],
    }
    manifest = run_spec(spec, workdir, tables={"data.parquet": sample_table()}, pm=pm)
    final = read_step_output(manifest, "select")
    scored = read_step_output(manifest, "scored")
    out = workdir / "run" / "out"

    assert pl.read_parquet(out / "final.parquet").equals(final)
    assert pl.read_ndjson(out / "final.jsonl", schema=final.schema).equals(final)
    csv = pl.read_csv(out / "scored.csv")
    assert csv.columns == ["uid", "score"] and csv["uid"].to_list() == scored["uid"].to_list()
    uids = np.load(out / "uids.npy")
    assert uids.tolist() == sorted(int(u, 16) for u in final["uid"])

    rows = {o["format"]: o["rows"] for o in manifest["outputs"]}
    assert rows == {"parquet": final.height, "jsonl": final.height, "csv": scored.height, "uids": final.height}
    assert {Path(o["path"]).name for o in manifest["outputs"]} == {"final.parquet", "final.jsonl", "scored.csv",
                                                                    "uids.npy"}
    assert not list(out.glob(".*.tmp"))  # written atomically


def test_datacomp_uids_are_written_as_pairs_of_uint64(pm, workdir):
    table = sample_table(5, duplicates=False).with_columns(
        pl.Series("uid", [f"{i:032x}" for i in (5, 3, 2**100, 7, 1)])
    )
    spec = {"source": {"path": "data.parquet"}, "outputs": [{"format": "uids", "path": "uids.npy"}]}
    run_spec(spec, workdir, tables={"data.parquet": table}, pm=pm)
    array = np.load(workdir / "run" / "uids.npy")
    assert array.dtype == np.dtype("u8,u8")
    assert [(int(a) << 64) | int(b) for a, b in array.tolist()] == sorted([5, 3, 2**100, 7, 1])


def test_an_empty_result_still_writes_every_output(pm, workdir):
    spec = {
        "source": {"path": "data.parquet"},
        "steps": [{"step": "filter", "params": {"where": "false"}}],
        "outputs": [{"format": "parquet", "path": "o.parquet"}, {"format": "csv", "path": "o.csv"},
                    {"format": "uids", "path": "o.npy"}],
    }
    manifest = run_spec(spec, workdir, tables={"data.parquet": sample_table(10)}, pm=pm)
    assert [o["rows"] for o in manifest["outputs"]] == [0, 0, 0]
    assert pl.read_parquet(workdir / "run" / "o.parquet").columns == ["uid", "url", "alt_text", "score", "lang"]


def test_a_csv_with_a_byte_order_mark_when_asked_reads_back_as_it_was(pm, workdir):
    """``bom: true`` for Excel (which reads a CSV opened by double-click as UTF-8 only with the mark);
    without it the file starts with the header, as other tools write it."""
    table = pl.DataFrame({"url": ["http://a/1.jpg", "http://a/2.jpg"], "alt_text": ["東京タワー 🗼", "مرحبا"]})
    spec = {"source": {"path": "data.parquet"},
            "outputs": [{"format": "csv", "path": "bom.csv", "params": {"bom": True}},
                        {"format": "csv", "path": "plain.csv"}]}
    run_spec(spec, workdir, tables={"data.parquet": table}, pm=pm)
    marked, plain = (workdir / "run" / "bom.csv").read_bytes(), (workdir / "run" / "plain.csv").read_bytes()
    assert marked == b"\xef\xbb\xbf" + plain and plain.startswith(b"uid,url,alt_text")
    (workdir / "again").mkdir()
    (workdir / "again" / "bom.csv").write_bytes(marked)
    again = run_spec({"source": {"path": "bom.csv"}}, workdir / "again", pm=pm)
    assert read_step_output(again, "source")["alt_text"].to_list() == table["alt_text"].to_list()
