"""Fused shard steps (curate.fusion): the same bytes and the same lineage as running each step
alone, one cache and resume unit, and a SIGKILL mid-group resumes to byte-identical outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.runstore import StoreWarning
from curate.testing import run_spec
from curate.testing.runner import read_step_output
from tests.conftest import cli_env, kill_when_ready, sample_table
from tests.core.fusion_checks import CHOICES, assert_same_stores, chain_spec, stored_files


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.sampled_from(sorted(CHOICES)), min_size=1, max_size=5),
       shard_size=st.sampled_from([7, 40, 1000]))
def test_a_fused_chain_writes_what_the_steps_alone_write(pm, tmp_path, names, shard_size):
    example = tmp_path / str(len(list(tmp_path.iterdir())))
    table = sample_table(120)
    runs = {}
    for fuse in (True, False):
        runs[fuse] = run_spec(chain_spec(names, shard_size, fuse), example / str(fuse),
                              tables={"data.parquet": table}, pm=pm)
    fused, alone = runs[True], runs[False]
    assert (example / "True" / "run" / "out.parquet").read_bytes() == \
        (example / "False" / "run" / "out.parquet").read_bytes()
    # Dropped rows of every step, and kept rows of every step that stores them, byte for byte.
    assert_same_stores(fused, alone)


def test_the_plan_groups_consecutive_thread_safe_shard_steps(pm, tmp_path):
    from curate.plan import make_plan
    from curate.spec import load_spec_text
    import yaml

    spec = chain_spec(["filter", "normalize", "dedup", "sample", "select"], 40, True)
    spec["outputs"].append({"format": "parquet", "path": "mid.parquet", "step": "s3_sample"})
    (tmp_path / "data.parquet").write_bytes(b"")
    sample_table(10).write_parquet(tmp_path / "data.parquet")
    text = yaml.safe_dump(spec, sort_keys=False)
    plan = make_plan(load_spec_text(text, tmp_path / "spec.yaml"), pm, tmp_path / "run")
    # the source heads filter+normalize; dedup (table scope) heads sample, which ends its group
    # because an output reads its kept rows; select alone.
    assert [p.group for p in plan.steps] == [(0, 2), (0, 2), (0, 2), (3, 4), (3, 4), (5, 5)]
    assert [p.stores_kept_rows for p in plan.steps] == [False, False, True, False, True, True]
    from curate.plan import plan_rows

    head = ["source", "s0_filter", "s1_normalize"]
    assert [r["fused"] for r in plan_rows(plan)][:5] == [head, head, head, ["s2_dedup", "s3_sample"],
                                                         ["s2_dedup", "s3_sample"]]
    # Without fusion every step is alone.
    plan = make_plan(load_spec_text(yaml.safe_dump({**spec, "run": {**spec["run"], "fuse": False}}),
                                    tmp_path / "spec.yaml"), pm, tmp_path / "run")
    assert [p.group for p in plan.steps] == [(i, i) for i in range(6)]


def test_a_fused_group_is_one_cache_unit_and_intermediate_kept_rows_are_not_stored(pm, tmp_path):
    spec = chain_spec(["normalize", "filter", "sample"], 40, True)
    first = run_spec(spec, tmp_path, tables={"data.parquet": sample_table(120)}, pm=pm)
    assert [r.get("kept_rows_stored", True) for r in first["steps"]] == [False, False, False, True]
    assert all(r["fused"] == ["source", "s0_normalize", "s1_filter", "s2_sample"] for r in first["steps"])
    assert not (Path(first["steps"][0]["path"]) / "data").exists()
    assert not (Path(first["steps"][1]["path"]) / "data").exists()
    with pytest.raises(ValueError, match="ran fused"):
        read_step_output(first, "s1_filter")
    assert read_step_output(first, "s2_sample").height == first["steps"][3]["rows_out"]
    # Views: a fused step's kept rows too (the source's read in place, exact and in order; a
    # member's from the rows that left the group after it), its dropped rows and the lineage.
    con = duckdb.connect(str(tmp_path / "run" / "curate.duckdb"), read_only=True)
    views = {row[0] for row in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    kept = {name: con.sql(f'SELECT uid FROM "{name}"').pl()["uid"].to_list()
            for name in ("00_source", "01_s0_normalize", "02_s1_filter")}
    con.close()
    assert {"00_source", "01_s0_normalize", "02_s1_filter", "02_s1_filter_dropped", "03_s2_sample",
            "03_s2_sample_dropped", "lineage", "final"} <= views
    unfused = run_spec({**spec, "run": {**spec["run"], "fuse": False}}, tmp_path / "unfused",
                       tables={"data.parquet": sample_table(120)}, pm=pm)
    assert kept["00_source"] == read_step_output(unfused, "source")["uid"].to_list()
    assert read_step_output(first, "source").equals(read_step_output(unfused, "source"))
    for name, label in (("01_s0_normalize", "s0_normalize"), ("02_s1_filter", "s1_filter")):
        assert sorted(kept[name]) == sorted(read_step_output(unfused, label)["uid"].to_list())

    again = run_spec(spec, tmp_path, pm=pm)  # (writing data.parquet again would be a new source)
    assert all(r["cached"] for r in again["steps"])
    # A member's dropped shard gone: the whole group is recomputed, to the same bytes.
    files = stored_files(first)
    gone = next((Path(first["steps"][2]["path"]) / "dropped").glob("shard-*.parquet"))
    gone.unlink()
    with pytest.warns(StoreWarning) as caught:
        third = run_spec(spec, tmp_path, pm=pm)
    shard = int(gone.stem.removeprefix("shard-"))
    assert {str(w.message).split(":")[0] for w in caught} == {
        "step 's1_filter' is recomputed", f"step 's0_normalize+s1_filter+s2_sample', shard {shard} was recomputed"}
    assert all(f"{gone}, which its marker recorded, is missing" in str(w.message) for w in caught)
    assert [r["cached"] for r in third["steps"]] == [False, False, False, False]
    assert stored_files(third) == files
    # The same steps unfused: the members (no kept rows stored) are not reused.
    alone = run_spec({**spec, "run": {**spec["run"], "fuse": False}}, tmp_path, pm=pm)
    assert [r["cached"] for r in alone["steps"]][:3] == [False, False, False]
    assert stored_files(alone).items() >= files.items()


SLOW_PLUGIN = '''
"""curate-drawl: a slow thread-safe step, so a test can kill a run inside a fused group."""
import time

import polars as pl
from pydantic import Field

from curate import Step, StepParams, hookimpl


class Drawl(Step):
    name = "drawl"
    reads = {"alt_text": pl.Utf8}
    writes = {"drawl": pl.Int64}
    drops_rows = True
    thread_safe = True

    class Params(StepParams):
        delay: float = Field(0.0, ge=0, json_schema_extra={"fingerprint": False})

    def process_shard(self, table, ctx):
        time.sleep(self.params.delay)
        length = pl.col("alt_text").fill_null("").str.len_chars()
        return table.with_columns(length.alias("drawl"),
                                  pl.when(length < 4).then(pl.lit("short")).alias("_drop_reason"))


@hookimpl
def curate_register_steps():
    return [Drawl]
'''

SHARDS = 16


def resume_spec(delay: float) -> dict:
    return {
        "name": "fused_resume",
        "source": {"path": "data.parquet"},
        "steps": [
            {"step": "normalize_text"},
            {"step": "drawl", "params": {"delay": delay}},  # slow: the run is killed in here
            {"step": "filter", "params": {"where": "score >= 0.2", "reason": "low_score"}},
            {"step": "sample", "params": {"fraction": 0.6}},
        ],
        "outputs": [{"format": "parquet", "path": "out.parquet"}],
        "run": {"dir": "run", "shard_size": 10, "report": False, "fuse_heads": True, "executor": {"name": "local", "params": {"workers": 2}}},
    }


def group_markers(store: Path) -> dict[Path, bytes]:
    """Shard markers of a fused group that has started but not finished."""
    for step_dir in store.iterdir() if store.exists() else ():
        if (step_dir / "shards").is_dir() and not (step_dir / "_COMPLETE.json").exists():
            return {p: p.read_bytes() for p in sorted((step_dir / "shards").glob("*.json"))}
    return {}


def test_a_run_killed_inside_a_fused_group_resumes_to_byte_identical_output(write_spec, workdir, make_plugin_dist):
    plugin = make_plugin_dist("curate-drawl", SLOW_PLUGIN, version="0.1", entry_point="drawl")
    table = sample_table(SHARDS * 10)
    killed_dir, clean_dir = workdir / "killed", workdir / "clean"
    write_spec(resume_spec(delay=0.3), table=table, directory=killed_dir)
    write_spec(resume_spec(delay=0.0), table=table, directory=clean_dir)
    command = [sys.executable, "-m", "curate.cli", "run", "spec.yaml", "--quiet"]
    repo = Path(__file__).resolve().parents[2]  # this checkout's curate, not an installed one
    env = cli_env([plugin, repo, repo / "plugins"])

    def three_shards_done() -> dict[Path, bytes] | None:
        markers = group_markers(killed_dir / "run" / "store")
        return markers if len(markers) >= 3 else None

    done_before_kill = kill_when_ready(command, killed_dir, env, three_shards_done,
                                       what="three shards of the fused group are done")
    assert 3 <= len(done_before_kill) < SHARDS
    assert all(json.loads(content)["members"] for content in done_before_kill.values())

    resumed = subprocess.run(command, cwd=killed_dir, env=env, capture_output=True, text=True, timeout=120,
                             check=False)
    assert resumed.returncode == 0, resumed.stderr
    clean = subprocess.run(command, cwd=clean_dir, env=env, capture_output=True, text=True, timeout=120,
                           check=False)
    assert clean.returncode == 0, clean.stderr

    for marker, content in done_before_kill.items():  # finished shards were not redone
        assert marker.read_bytes() == content
    resumed_manifest = json.loads((killed_dir / "run" / "manifest.json").read_text())
    clean_manifest = json.loads((clean_dir / "run" / "manifest.json").read_text())
    resumed_files, clean_files = stored_files(resumed_manifest), stored_files(clean_manifest)
    assert resumed_files.keys() == clean_files.keys()
    assert [name for name in resumed_files if resumed_files[name] != clean_files[name]] == []
    assert (killed_dir / "run" / "out.parquet").read_bytes() == (clean_dir / "run" / "out.parquet").read_bytes()
    assert [r["dropped"] for r in resumed_manifest["steps"]] == [r["dropped"] for r in clean_manifest["steps"]]
    assert resumed_manifest["status"] == "complete"
    assert [r.get("kept_rows_stored", True) for r in resumed_manifest["steps"]] == [False, False, False, False, True]
