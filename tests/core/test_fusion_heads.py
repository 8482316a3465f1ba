"""Groups headed by the source or a table step (curate.fusion.fusable_head): for random tables and
random chains of relational steps, the same outputs, kept rows, dropped uids, reasons and
``_duplicate_of`` as running every step alone, with the source read in place by reference."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.errors import SourceError
from curate.plan import make_plan, plan_rows
from curate.spec import load_spec_text
from curate.testing import run_spec
from curate.testing import strategies as cst
from curate.testing.runner import read_step_output
from tests.conftest import sample_table
from tests.core.fusion_checks import CHOICES, assert_same_stores, chain_spec

TABLES = cst.tables(max_rows=60, extra_columns={"score": st.floats(0, 1, allow_nan=False),
                                                "lang": st.sampled_from(["en", "fr", "ja"])},
                    extra_dtypes={"score": pl.Float64, "lang": pl.Utf8})


def kept_uids(run_dir: Path, manifest: dict) -> dict[str, list[str]]:
    """Each step's kept uids through its view (stored, by reference, or rebuilt from its group)."""
    con = duckdb.connect(str(run_dir / "curate.duckdb"), read_only=True)
    try:
        return {r["label"]: sorted(con.sql(f'SELECT uid FROM "{r["index"]:02d}_{r["label"]}"').pl()["uid"].to_list())
                for r in manifest["steps"]}
    finally:
        con.close()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(table=TABLES, own_uids=st.booleans(),
       names=st.lists(st.sampled_from(sorted(CHOICES)), min_size=1, max_size=5),
       shard_size=st.sampled_from([1, 7, 40, 1000]))
def test_a_headed_group_keeps_and_drops_what_the_steps_alone_do(pm, tmp_path, table, own_uids, names, shard_size):
    example = tmp_path / str(len(list(tmp_path.iterdir())))
    if not own_uids:
        table = table.drop("uid")
    runs = {fuse: run_spec(chain_spec(names, shard_size, fuse), example / str(fuse),
                           tables={"data.parquet": table}, pm=pm) for fuse in (True, False)}
    fused, alone = runs[True], runs[False]
    if names[0] != "dedup":  # the source heads the first group (a table step reads stored rows)
        assert fused["steps"][0]["fused"][0] == "source"
        assert fused["steps"][0]["kept_rows_stored"] is False
    out = "run/out.parquet"
    assert (example / "True" / out).read_bytes() == (example / "False" / out).read_bytes()
    # Dropped rows (uids, reasons, _duplicate_of, content) byte for byte; kept rows where stored.
    assert_same_stores(fused, alone)
    # Every step's kept rows are readable and the same rows as alone; the source's exactly.
    assert kept_uids(example / "True" / "run", fused) == kept_uids(example / "False" / "run", alone)
    assert read_step_output(fused, "source").equals(read_step_output(alone, "source"))


def test_a_table_step_heads_the_shard_steps_after_it(pm, tmp_path):
    manifest = run_spec(chain_spec(["dedup", "sample", "filter"], 7, True), tmp_path,
                        tables={"data.parquet": sample_table(90)}, pm=pm)
    source, dedup, sample, last = manifest["steps"]
    assert dedup["fused"] == sample["fused"] == last["fused"] == ["s0_dedup", "s1_sample", "s2_filter"]
    assert [r["kept_rows_stored"] for r in (dedup, sample, last)] == [False, False, True]
    assert not (Path(dedup["path"]) / "data").exists()
    assert dedup["dropped"]["s0_dedup"] > 0  # sample_table repeats rows
    # A table step reads its input's files: the source before it stores its rows, alone.
    assert "fused" not in source and source.get("kept_rows_stored", True) is True


def test_a_fused_source_still_refuses_repeated_uids_of_its_own(pm, tmp_path):
    table = pl.DataFrame({"uid": ["a", "b", "a"], "url": ["https://x/1", "https://x/2", "https://x/3"],
                          "alt_text": ["one", "two", "three"]})
    spec = {"name": "own", "source": {"path": "data.parquet"},
            "steps": [{"step": "filter", "params": {"where": "true"}}],
            "outputs": [{"format": "parquet", "path": "out.parquet"}], "run": {"report": False, "fuse_heads": True}}
    with pytest.raises(SourceError, match="duplicate values"):
        run_spec(spec, tmp_path, tables={"data.parquet": table}, pm=pm)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "failed"


def test_a_head_that_stored_its_kept_rows_runs_once(pm, tmp_path):
    """A table step that ran alone (the last step of one experiment variant) heads a group in the
    next variant: it is reused, not run again, and its followers read its stored kept rows, to
    the bytes a fresh headed run writes."""
    table = sample_table(90)
    shared = tmp_path / "shared"
    first = run_spec(chain_spec(["dedup"], 7, True), shared, tables={"data.parquet": table}, pm=pm)
    assert "fused" not in first["steps"][1] and first["steps"][1].get("kept_rows_stored", True)
    spec = chain_spec(["dedup", "sample", "filter"], 7, True)
    plan = make_plan(load_spec_text(yaml.safe_dump(spec), shared / "spec.yaml"), pm, shared / "run")
    assert [row["cached"] for row in plan_rows(plan)] == [True, True, False, False]  # `curate plan` says so
    second = run_spec(spec, shared, pm=pm)
    assert [r["cached"] for r in second["steps"]] == [True, True, False, False]
    assert second["steps"][1]["fused"] == ["s0_dedup", "s1_sample", "s2_filter"]
    fresh = run_spec(chain_spec(["dedup", "sample", "filter"], 7, True), tmp_path / "fresh",
                     tables={"data.parquet": table}, pm=pm)
    assert not any(r["cached"] for r in fresh["steps"])
    assert (shared / "run" / "out.parquet").read_bytes() == (tmp_path / "fresh" / "run" / "out.parquet").read_bytes()
    assert_same_stores(fresh, second)
    third = run_spec(chain_spec(["dedup", "sample", "filter"], 7, True), shared, pm=pm)
    assert all(r["cached"] for r in third["steps"])
