from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.engine import Engine
from curate.errors import StepError
from curate.hookspecs import hookimpl
from curate.plan import make_plan
from curate.runstore import write_views
from curate.spec import load_spec
from curate.step import Step
from curate.testing import run_spec
from curate.testing import strategies as cst
from curate.testing.runner import read_step_output
from tests.conftest import sample_table

STEPS = [
    {"step": "normalize_text"},
    {"step": "filter", "name": "scored", "params": {"where": "score >= 0.2", "reason": "low_score"}},
    {"step": "exact_dedup", "params": {"columns": ["url", "alt_text"]}},
    {"step": "sample", "params": {"fraction": 0.8}},
    {"step": "select", "params": {"columns": ["url", "alt_text", "score"]}},
]


def spec_dict(shard_size: int = 13, steps: list | None = None, **run) -> dict:
    return {"name": "engine", "source": {"path": "data.parquet"}, "steps": steps if steps is not None else STEPS,
            "run": {"dir": "run", "shard_size": shard_size, **run}}


def run(pm, write_spec, directory: Path, spec: dict, rows: int = 150, **options) -> dict:
    """Write the spec (and the shared data file) into ``directory``, plan and run it there."""
    path = write_spec(spec, directory=directory)
    data = directory / "data.parquet"
    if not data.exists():
        sample_table(rows).write_parquet(data)
    plan = make_plan(load_spec(path), pm, directory / "run")
    return Engine(plan, pm).run(**options)


def step_files(manifest: dict) -> dict[str, bytes]:
    out = {}
    for record in manifest["steps"]:
        root = Path(record["path"])
        for kind in ("data", "dropped"):
            for path in sorted((root / kind).glob("shard-*.parquet")):
                out[f"{record['index']:02d}_{record['label']}/{kind}/{path.name}"] = path.read_bytes()
    return out


def test_a_cached_run_equals_a_fresh_run_byte_for_byte(pm, write_spec, workdir):
    first = run(pm, write_spec, workdir / "a", spec_dict())
    again = run(pm, write_spec, workdir / "a", spec_dict())
    fresh = run(pm, write_spec, workdir / "b", spec_dict())
    assert not any(r["cached"] for r in first["steps"])
    assert all(r["cached"] for r in again["steps"])
    assert len(step_files(first)) > 2 * len(STEPS)
    assert step_files(again) == step_files(first) == step_files(fresh)
    assert [r["rows_out"] for r in again["steps"]] == [r["rows_out"] for r in fresh["steps"]]


def test_changing_one_steps_params_reruns_it_and_downstream_only(pm, write_spec, workdir):
    before = run(pm, write_spec, workdir, spec_dict())
    changed = json.loads(json.dumps(STEPS))
    changed[2]["params"]["keep"] = "last"
    after = run(pm, write_spec, workdir, spec_dict(steps=changed))
    assert [r["cached"] for r in after["steps"]] == [True, True, True, False, False, False]
    assert [r["fingerprint"] for r in after["steps"][:3]] == [r["fingerprint"] for r in before["steps"][:3]]
    assert all(a["fingerprint"] != b["fingerprint"] for a, b in zip(after["steps"][3:], before["steps"][3:]))


def test_the_run_seed_reruns_only_random_steps_and_downstream(pm, write_spec, workdir):
    run(pm, write_spec, workdir, spec_dict())
    after = run(pm, write_spec, workdir, spec_dict(seed=1))
    assert [r["cached"] for r in after["steps"]] == [True, True, True, True, False, False]


def test_tuning_a_non_fingerprint_param_keeps_the_cache(pm, write_spec, workdir):
    run(pm, write_spec, workdir, spec_dict())
    after = run(pm, write_spec, workdir, spec_dict(executor={"name": "local", "params": {"workers": 3}}))
    assert all(r["cached"] for r in after["steps"])


@pytest.mark.parametrize("fuse", [True, False])
def test_from_a_step_recomputes_it_and_everything_after(pm, write_spec, workdir, fuse):
    first = run(pm, write_spec, workdir, spec_dict(fuse=fuse))
    files = step_files(first)
    again = run(pm, write_spec, workdir, spec_dict(fuse=fuse), from_label="scored")
    # Fused, normalize_text and scored are one group: --from scored re-runs the group.
    expected = [True, not fuse, False, False, False, False]
    assert [r["cached"] for r in again["steps"]] == expected
    assert step_files(again) == files
    none = run(pm, write_spec, workdir, spec_dict(fuse=fuse), use_cache=False)
    assert not any(r["cached"] for r in none["steps"])
    assert step_files(none) == files


def test_from_an_unknown_label_suggests_one(pm, write_spec, workdir):
    from curate.errors import UsageError

    with pytest.raises(UsageError, match="did you mean 'scored'"):
        run(pm, write_spec, workdir, spec_dict(), from_label="score")


def test_rows_and_uids_do_not_depend_on_the_shard_size(pm, write_spec, workdir):
    # fuse: false stores every step's kept rows, so each step's output can be compared.
    results = [run(pm, write_spec, workdir / str(size), spec_dict(shard_size=size, fuse=False), rows=25)
               for size in (1, 7, 1000)]
    for label in ("source", "scored", "exact_dedup", "sample", "select"):
        frames = [read_step_output(manifest, label) for manifest in results]
        assert frames[0].equals(frames[1]) and frames[1].equals(frames[2]), label
    assert [r["shards"] for r in (m["steps"][0] for m in results)] == [25, 4, 1]


@settings(max_examples=6)
@given(table=cst.tables(max_rows=25, extra_columns={"n": st.integers(0, 3)}))
def test_uids_are_unique_stable_and_content_derived(pm, tmp_path, table):
    table = table.drop("uid")  # the engine derives them
    example = tmp_path / str(len(list(tmp_path.iterdir())))

    def uids_of(frame: pl.DataFrame, where: str, shard_size: int) -> list[str]:
        manifest = run_spec({"source": {"path": "d.parquet"}, "run": {"shard_size": shard_size}}, example / where,
                            tables={"d.parquet": frame}, pm=pm)
        return read_step_output(manifest, "source")["uid"].to_list()

    first = uids_of(table, "a", 3)
    assert len(set(first)) == len(first) == table.height
    assert uids_of(table, "b", 1000) == first
    # Rows with other url/alt_text keep their uid when rows are added elsewhere (content, not position).
    extra = pl.DataFrame({"url": ["https://new/1.jpg"], "alt_text": ["a new row"], "n": [0]},
                         schema=table.schema)
    assert uids_of(pl.concat([extra, table]), "c", 5)[1:] == first


def test_the_manifest_records_what_ran(pm, write_spec, workdir):
    manifest = run(pm, write_spec, workdir, spec_dict())
    on_disk = json.loads((workdir / "run" / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest, default=str))
    assert manifest["status"] == "complete" and manifest["seconds"] > 0
    assert len(manifest["spec_hash"]) == 16
    assert manifest["plugins"] == {"basics": "0.1.0"}
    assert manifest["seed"] == 0 and manifest["executor"] == "local"
    source, normalize, scored, dedup, _sample, select = manifest["steps"]
    assert source["rows_in"] == source["rows_out"] == 150
    assert scored["dropped"] == {"low_score": scored["rows_in"] - scored["rows_out"]} and scored["dropped"]
    assert dedup["dropped"] == {"exact_dedup": dedup["rows_in"] - dedup["rows_out"]} and dedup["dropped"]
    for before, after in zip(manifest["steps"], manifest["steps"][1:]):
        assert after["rows_in"] == before["rows_out"]
    for record in manifest["steps"]:
        assert record["complete"] and len(record["fingerprint"]) == 20
        assert record["plugin"] == "basics" and record["plugin_version"] == "0.1.0"
        assert isinstance(record["seconds"], float) and record["finished_at"]
        assert record["rows_out"] + sum(record["dropped"].values()) == record["rows_in"]
    assert select["columns"] == {"uid": "String", "url": "String", "alt_text": "String", "score": "Float64"}
    assert normalize["params"]["unicode_form"] == "NFC"
    assert (workdir / "run" / "spec.yaml").read_text().startswith("version: 1\nname: engine\n")
    assert sorted(p.name for p in (workdir / "run" / "steps").iterdir()) == [
        "00_source", "01_normalize_text", "02_scored", "03_exact_dedup", "04_sample", "05_select"]


def test_the_duckdb_file_has_a_view_per_step_final_and_lineage(pm, write_spec, workdir):
    manifest = run(pm, write_spec, workdir, spec_dict())
    con = duckdb.connect(str(workdir / "run" / "curate.duckdb"), read_only=True)
    try:
        final = con.sql("SELECT * FROM final").pl()
        assert final.equals(read_step_output(manifest, "select"))
        assert con.sql('SELECT count(*) FROM "02_scored"').fetchall()[0][0] == manifest["steps"][2]["rows_out"]
        lineage = con.sql("SELECT step, reason, count(*) AS n FROM lineage GROUP BY ALL ORDER BY ALL").fetchall()
        expected = sorted((r["label"], reason, n) for r in manifest["steps"] for reason, n in r["dropped"].items())
        assert lineage == expected
        # Every input row is either in `final` or dropped exactly once.
        source = con.sql('SELECT count(*) FROM "00_source"').fetchall()[0][0]
        dropped = con.sql("SELECT count(DISTINCT uid), count(*) FROM lineage").fetchall()[0]
        assert dropped[0] == dropped[1] == source - final.height
        survivors = con.sql("""
            SELECT count(*) FROM lineage l JOIN "03_exact_dedup" d ON l.duplicate_of = d.uid
            WHERE l.step = 'exact_dedup'
        """).fetchall()[0][0]
        assert survivors == manifest["steps"][3]["dropped"]["exact_dedup"]
    finally:
        con.close()


def test_writing_the_views_leaves_nothing_attached(pm, write_spec, workdir):
    # The views are written through a database the process shares (duckdb's default connection),
    # attached under an alias of their own: two runs in one process must not see each other's.
    manifest = run(pm, write_spec, workdir, spec_dict())
    databases = duckdb.default_connection().sql("SELECT database_name FROM duckdb_databases() WHERE NOT internal")
    assert [name for (name,) in databases.fetchall() if name.startswith("views_")] == []
    assert not list((workdir / "run").glob(".curate.duckdb.*"))  # no temporary (nor its WAL) left behind
    write_views(workdir / "run", manifest)  # rewriting replaces the file it wrote
    con = duckdb.connect(str(workdir / "run" / "curate.duckdb"), read_only=True)
    try:
        assert con.sql("SELECT count(*) FROM final").fetchall()[0][0] == manifest["steps"][-1]["rows_out"]
    finally:
        con.close()


class ForgetsItsColumn(Step):
    name = "forgets_its_column"
    writes = {"quality": pl.Float64}

    def process_shard(self, table, ctx):
        return table


class BuggyPlugin:
    @hookimpl
    def curate_register_steps(self):
        return [ForgetsItsColumn]


def test_a_step_that_does_not_write_its_declared_column_fails_naming_it(pm, register_plugin, write_spec, workdir):
    register_plugin(BuggyPlugin(), "buggy")
    with pytest.raises(StepError, match="declared column 'quality' is missing") as caught:
        run(pm, write_spec, workdir, spec_dict(steps=[{"step": "forgets_its_column"}]))
    assert "this is a bug in plugin 'buggy' 0.1 (its step 'forgets_its_column')" in str(caught.value)
    manifest = json.loads((workdir / "run" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "quality" in manifest["error"]


def test_paths_with_quotes_are_paths_not_sql(pm, tmp_path):
    workdir = tmp_path / "bob's \"data\""
    table = sample_table(30).with_columns(pl.Series("uid", [f"id-{i}" for i in range(30)]))
    spec = {"source": {"path": "data.parquet"},
            "steps": [{"step": "exact_dedup", "params": {"columns": ["alt_text"]}},
                      {"step": "sample", "params": {"count": 3}},
                      {"step": "sql", "params": {"query": "SELECT * FROM input ORDER BY uid"}}],
            "run": {"shard_size": 7}}
    manifest = run_spec(spec, workdir, tables={"data.parquet": table}, pm=pm)
    assert manifest["steps"][-1]["rows_out"] == 3
    con = duckdb.connect(str(workdir / "run" / "curate.duckdb"), read_only=True)
    try:
        assert con.sql("SELECT count(*) FROM final").fetchall() == [(3,)]
    finally:
        con.close()
