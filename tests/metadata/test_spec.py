"""Both steps in real runs: artifacts, manifest facts, the report section, the CLI, the shipped spec."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
import yaml
from curate_metadata.report import sections

from curate.testing import run_spec
from tests.conftest import REPO


def test_a_run_writes_named_entry_counts_and_facts_the_report_shows(metadata_pm, tmp_path):
    (tmp_path / "entries.txt").write_text("red\ncircle\n<b>blue</b>\nstar\n")
    texts = ["a red circle"] * 60 + ["a red star"] * 20 + ["a <b>blue</b> one"] * 3 + ["nothing"] * 5
    table = pl.DataFrame({"url": [f"https://example.com/{i}.jpg" for i in range(len(texts))], "alt_text": texts})
    spec = {
        "name": "balance",
        "source": {"format": "parquet", "path": "in.parquet"},
        "steps": [{"step": "metadata_match", "params": {"entries": str(tmp_path / "entries.txt")}},
                  {"step": "metadata_balance", "params": {"t": 10}}],
        "run": {"dir": "run", "shard_size": 16, "seed": 1},
    }
    manifest = run_spec(spec, tmp_path, tables={"in.parquet": table}, pm=metadata_pm)
    match, balance = manifest["steps"][1], manifest["steps"][2]
    assert match["dropped"] == {"no_metadata_match": 5} and match["summary"]["entries"] == 4
    facts = balance["summary"]
    assert (facts["t"], facts["rows_in"], facts["head_entries"], facts["tail_entries"]) == (10, 83, 3, 1)
    assert facts["rows_kept"] == balance["rows_out"] < 83
    assert facts["entropy_after"] > facts["entropy_before"]
    counts = pl.read_parquet(Path(balance["path"]) / facts["counts_file"]).sort("entry_id")
    assert counts["entry"].to_list() == ["red", "circle", "<b>blue</b>", "star"]
    assert counts["count"].to_list() == [80, 60, 3, 20]
    assert counts["probability"].to_list() == [10 / 80, 10 / 60, 1.0, 10 / 20]
    assert counts["kept"][2] == 3  # the tail entry keeps every row
    [section] = sections(manifest)
    assert "Metadata balance" == section["title"]
    assert "&lt;b&gt;blue&lt;/b&gt;" in section["html"] and "<b>blue" not in section["html"]


def test_a_missing_list_exits_2_with_a_hint_and_no_traceback(curate_cli, write_spec):
    table = pl.DataFrame({"url": ["https://example.com/a.jpg"], "alt_text": ["red"]})
    write_spec({"source": {"format": "parquet", "path": "data.parquet"},
                "steps": [{"step": "metadata_match", "params": {"entries": "missing.txt"}}]}, table=table)
    result = curate_cli("validate", "spec.yaml", pythonpath=[REPO, REPO / "plugins"])
    assert result.code == 2, result
    assert "metadata list missing.txt does not exist" in result.stderr and "hint" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.slow
def test_the_shipped_spec_flattens_the_long_tailed_world(tmp_path):
    """specs/metadata_balance.yaml on a smaller world with the same knob: the most matched
    concepts lose rows, the distribution gets flatter, the tail keeps everything."""
    spec = yaml.safe_load((REPO / "specs" / "metadata_balance.yaml").read_text())
    spec["source"]["params"].update(n=1500, dir=str(tmp_path / "world"), port=0)
    spec["steps"][1]["params"]["t"] = 60
    spec["outputs"] = []
    spec["run"].update(dir="run", report=False)
    manifest = run_spec(spec, tmp_path)
    facts = manifest["steps"][2]["summary"]
    assert facts["entropy_after"] > facts["entropy_before"]
    assert facts["top_share_after"] < facts["top_share_before"]
    assert facts["max_count_after"] < facts["max_count_before"]
    counts = pl.read_parquet(Path(manifest["steps"][2]["path"]) / facts["counts_file"])
    tail = counts.filter(pl.col("count") <= 60)
    assert tail.height and (tail["kept"] == tail["count"]).all()
    assert not math.isnan(facts["head_share_after"])


def test_a_pipe_for_the_upstream_entries_is_an_error_not_a_wait(metadata_pm, tmp_path):
    """A store from elsewhere with a pipe where metadata_match keeps its entries: metadata_balance,
    run again, named it instead of waiting forever for a writer."""
    import os

    from curate_metadata.entries import MetadataError
    from curate_metadata.match import ENTRIES_ARTIFACT

    from tests.core.test_run_dir_safety import no_endless_wait

    (tmp_path / "entries.txt").write_text("red\ncircle\n")
    table = pl.DataFrame({"url": [f"https://example.com/{i}.jpg" for i in range(20)], "alt_text": ["a red circle"] * 20})
    spec = {"name": "balance", "source": {"format": "parquet", "path": "in.parquet"},
            "steps": [{"step": "metadata_match", "params": {"entries": str(tmp_path / "entries.txt")}},
                      {"step": "metadata_balance", "params": {"t": 5}}],
            "run": {"dir": "run", "shard_size": 16}}
    manifest = run_spec(spec, tmp_path, tables={"in.parquet": table}, pm=metadata_pm)
    match, balance = (Path(record["path"]) for record in manifest["steps"][1:])
    (balance / "_COMPLETE.json").unlink()
    (match / "artifacts" / ENTRIES_ARTIFACT).unlink()
    os.mkfifo(match / "artifacts" / ENTRIES_ARTIFACT)
    with no_endless_wait(), pytest.raises(MetadataError, match=r"is a pipe \(FIFO\), not the file curate wrote") as caught:
        run_spec(spec, tmp_path, pm=metadata_pm)
    assert f"rm -r '{match}'" in caught.value.hint
