"""A stored file that is not the one its marker recorded is never reused.

Every stored file (kept rows, dropped rows, uids, kept.json) is fingerprinted when it is written;
a file rewritten afterwards with as many rows (tampered, copied in from another run, bit-rot that
still parses) makes its step, or on resume its shard, run again, with a StoreWarning naming the
file, and the run ends with exactly what a clean run stores and writes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from curate.plan import make_plan, plan_rows
from curate.runstore import COMPLETE, StoreWarning
from curate.shards import PARQUET_OPTIONS
from curate.spec import load_spec_text
from curate.testing import run_spec
from tests.conftest import sample_table

# How the steps run: each alone; shard steps fused (groups read the source's stored rows); groups
# headed by the source (read in place: uids/ and kept.json) and by the table step.
LAYOUTS = {"alone": {"fuse": False}, "fused": {"fuse": True, "fuse_heads": False},
           "headed": {"fuse": True, "fuse_heads": True}}


def spec(data: Path, layout: str) -> dict:
    return {
        "name": "fingerprints",
        "source": {"path": str(data)},  # absolute: a copied run directory reads the same source
        "steps": [
            {"step": "filter", "params": {"where": "score >= 0.2", "reason": "low_score"}},
            {"step": "normalize_text", "params": {"min_length": 3}},
            {"step": "exact_dedup", "params": {"columns": ["url", "alt_text"]}},
            {"step": "sample", "params": {"fraction": 0.7}},
            {"step": "select", "params": {"columns": ["lang", "score", "alt_text", "url"]}},
        ],
        "outputs": [{"format": "parquet", "path": "out.parquet"}],
        "run": {"shard_size": 10, "report": False, **LAYOUTS[layout]},
    }


def stored(manifest: dict) -> dict[str, bytes]:
    """Every file each step stored, and the output, by a name that does not depend on the run dir."""
    out = {}
    for record in manifest["steps"]:
        step_dir = Path(record["path"])
        for path in sorted([*step_dir.glob("*/shard-*.parquet"), *step_dir.glob("kept.json")]):
            out[f"{record['index']:02d}_{record['label']}/{path.relative_to(step_dir)}"] = path.read_bytes()
    out["out.parquet"] = Path(manifest["outputs"][0]["path"]).read_bytes()
    return out


def clean_run(tmp_path: Path, pm, layout: str) -> tuple[Path, dict[str, bytes]]:
    """A finished run of ``layout`` (made once per test) and what it stored."""
    data = tmp_path / "data.parquet"
    if not data.exists():
        sample_table(95).write_parquet(data)
    workdir = tmp_path / f"clean-{layout}"
    if not (workdir / "run" / "manifest.json").exists():
        run_spec(spec(data, layout), workdir, pm=pm)
    return workdir, stored(json.loads((workdir / "run" / "manifest.json").read_text()))


def copy_of(tmp_path: Path, pm, layout: str) -> tuple[Path, dict[str, bytes]]:
    """A copy of the clean run's directory to damage (the source stays where it is)."""
    clean, files = clean_run(tmp_path, pm, layout)
    workdir = tmp_path / f"example-{len(list(tmp_path.glob('example-*')))}"
    shutil.copytree(clean / "run", workdir / "run", symlinks=True)
    return workdir, files


def again(workdir: Path, tmp_path: Path, pm, layout: str) -> dict:
    return run_spec(spec(tmp_path / "data.parquet", layout), workdir, pm=pm)


def step_dir(workdir: Path, label: str) -> Path:
    manifest = json.loads((workdir / "run" / "manifest.json").read_text())
    record = next(r for r in manifest["steps"] if r["label"] == label)
    return workdir / "run" / "store" / Path(record["path"]).name


def rewrite(path: Path, change) -> None:
    """Rewrite a stored shard with polars and the store's own settings: as many rows, new content."""
    frame = pl.read_parquet(path)
    changed = change(frame)
    assert changed.height == frame.height
    before = path.read_bytes()
    changed.write_parquet(path, **PARQUET_OPTIONS)
    assert path.read_bytes() != before


def one_value_changed(column: str, row: int):
    def change(frame: pl.DataFrame) -> pl.DataFrame:
        values = frame[column].to_list()
        values[row] = _other(values[row], frame.schema[column])
        return frame.with_columns(pl.Series(column, values, dtype=frame.schema[column]))
    return change


def _other(value, dtype):
    if value is None:
        return 1.0 if dtype.is_float() else "x"
    if isinstance(value, str):
        return value + "!"
    return value + 0.5


def warned(caught: pytest.WarningsRecorder, path: Path) -> list[str]:
    """The StoreWarnings that name ``path``."""
    return [str(w.message) for w in caught
            if issubclass(w.category, StoreWarning) and str(path) in str(w.message)]


def test_a_kept_shard_rewritten_with_as_many_rows_is_recomputed_alone(pm, tmp_path):
    workdir, clean = copy_of(tmp_path, pm, "alone")
    normalize = step_dir(workdir, "normalize_text")
    markers = {p.name: p.read_bytes() for p in (normalize / "shards").glob("*.json")}
    target = normalize / "data" / "shard-00002.parquet"
    rewrite(target, one_value_changed("alt_text", 1))
    text = yaml.safe_dump(spec(tmp_path / "data.parquet", "alone"))
    plan = make_plan(load_spec_text(text, workdir / "spec.yaml"), pm, workdir / "run")
    assert [row["cached"] for row in plan_rows(plan)] == [True, True, False, True, True, True]
    with pytest.warns(StoreWarning) as caught:
        manifest = again(workdir, tmp_path, pm, "alone")
    said = warned(caught, target)
    assert any("step 'normalize_text' is recomputed" in m and "is not the file its marker recorded" in m
               for m in said)
    assert any("step 'normalize_text', shard 2 was recomputed" in m for m in said)
    assert "is not the file its marker recorded" in manifest["steps"][2]["cache_rejected"]
    assert [r["cached"] for r in manifest["steps"]] == [True, True, False, True, True, True]
    assert stored(manifest) == clean
    # Only the shard that disagreed ran again: the others' markers are as they were.
    after = {p.name: p.read_bytes() for p in (normalize / "shards").glob("*.json")}
    assert {n for n in markers if markers[n] != after[n]} == {"00002.json"}


def test_a_dropped_shard_of_a_table_step_rewritten_shuffled_is_recomputed(pm, tmp_path):
    workdir, clean = copy_of(tmp_path, pm, "alone")
    target = step_dir(workdir, "exact_dedup") / "dropped" / "shard-00000.parquet"
    rewrite(target, lambda frame: frame.reverse())
    with pytest.warns(StoreWarning, match=re.escape(f"step 'exact_dedup' is recomputed: {target} is not the "
                                                    "file its marker recorded")):
        manifest = again(workdir, tmp_path, pm, "alone")
    assert [r["cached"] for r in manifest["steps"]] == [True, True, True, False, True, True]
    assert stored(manifest) == clean


def test_a_finished_shard_rewritten_before_resuming_is_recomputed(pm, tmp_path):
    workdir, clean = copy_of(tmp_path, pm, "alone")
    sample = step_dir(workdir, "sample")
    (sample / COMPLETE).unlink()  # killed after its shards, before the step's marker
    target = sample / "dropped" / "shard-00003.parquet"
    rewrite(target, one_value_changed("uid", 0))
    with pytest.warns(StoreWarning, match=re.escape(f"step 'sample', shard 3 was recomputed: {target} is not "
                                                    "the file its marker recorded")):
        manifest = again(workdir, tmp_path, pm, "alone")
    assert stored(manifest) == clean


@pytest.mark.parametrize("layout", ["fused", "headed"])
def test_a_fused_members_dropped_shard_rewritten_is_recomputed_in_its_group(pm, tmp_path, layout):
    workdir, clean = copy_of(tmp_path, pm, layout)
    target = step_dir(workdir, "filter") / "dropped" / "shard-00001.parquet"
    rewrite(target, one_value_changed("score", 0))
    with pytest.warns(StoreWarning) as caught:
        manifest = again(workdir, tmp_path, pm, layout)
    said = warned(caught, target)
    assert any("step 'filter' is recomputed" in m for m in said)
    assert any("step 'filter+normalize_text', shard 1 was recomputed" in m for m in said)
    assert stored(manifest) == clean


def test_a_cut_off_groups_finished_shard_rewritten_is_recomputed(pm, tmp_path):
    workdir, clean = copy_of(tmp_path, pm, "fused")
    for label in ("sample", "select"):
        (step_dir(workdir, label) / COMPLETE).unlink()
    target = step_dir(workdir, "select") / "data" / "shard-00001.parquet"
    rewrite(target, lambda frame: frame.reverse())
    said = f"step 'sample+select', shard 1 was recomputed: {target}"
    with pytest.warns(StoreWarning, match=re.escape(said)):
        manifest = again(workdir, tmp_path, pm, "fused")
    assert stored(manifest) == clean


@pytest.mark.parametrize("name", ["uids/shard-00002.parquet", "kept.json"])
def test_a_source_read_in_place_whose_reference_or_uids_changed_is_recomputed(pm, tmp_path, name):
    workdir, clean = copy_of(tmp_path, pm, "headed")
    target = step_dir(workdir, "source") / name
    if name == "kept.json":
        reference = json.loads(target.read_text())
        target.write_text(json.dumps({**reference, "columns": reference["columns"][:-1]}))
    else:
        rewrite(target, lambda frame: frame.reverse())
    said = f"step 'source' is recomputed: {target} is not the file"
    with pytest.warns(StoreWarning, match=re.escape(said)):
        manifest = again(workdir, tmp_path, pm, "headed")
    assert stored(manifest) == clean


def test_a_store_whose_markers_predate_fingerprints_is_still_reused(pm, tmp_path):
    workdir, clean = copy_of(tmp_path, pm, "fused")
    store = workdir / "run" / "store"
    for marker in [*store.glob(f"*/{COMPLETE}"), *store.glob("*/shards/*.json")]:
        facts = json.loads(marker.read_text())
        facts.pop("files", None)
        for field in ("input_digest", "input_from"):  # written since, as fingerprints were (curate.inputdigest)
            facts.pop(field, None)
        for member in facts.get("members") or []:
            member.pop("files")
        marker.write_text(json.dumps(facts))
    manifest = again(workdir, tmp_path, pm, "fused")  # no StoreWarning (warnings are errors here)
    assert all(r["cached"] for r in manifest["steps"])
    assert stored(manifest) == clean
    # Row counts are still checked: a shard cut short is recomputed (and fingerprinted this time).
    target = step_dir(workdir, "exact_dedup") / "data" / "shard-00000.parquet"
    pl.read_parquet(target).head(3).write_parquet(target)
    with pytest.warns(StoreWarning, match="step 'exact_dedup' is recomputed: its marker says .* rows out"):
        manifest = again(workdir, tmp_path, pm, "fused")
    assert stored(manifest) == clean
    assert "files" in json.loads((target.parent.parent / COMPLETE).read_text())


def test_a_file_beside_the_recorded_ones_makes_the_step_recomputed(pm, tmp_path):
    workdir, clean = copy_of(tmp_path, pm, "alone")
    dropped = step_dir(workdir, "exact_dedup") / "dropped"
    stray = dropped / "shard-00009.parquet"
    pl.read_parquet(dropped / "shard-00000.parquet").clear().write_parquet(stray)
    with pytest.warns(StoreWarning, match=re.escape(f"{stray} is not among the files its marker recorded")):
        manifest = again(workdir, tmp_path, pm, "alone")
    assert stored(manifest) == clean


TAMPERINGS = st.sampled_from(["value", "rows reversed", "bit flipped"])


@settings(max_examples=15)
@given(layout=st.sampled_from(sorted(LAYOUTS)), data=st.data())
def test_any_stored_file_changed_after_it_was_written_is_recomputed(pm, tmp_path, layout, data):
    workdir, clean = copy_of(tmp_path, pm, layout)
    files = sorted((workdir / "run" / "store").glob("*/*/shard-*.parquet"))
    target = data.draw(st.sampled_from(files), label="file")
    before = target.read_bytes()
    tampering = data.draw(TAMPERINGS, label="tampering")
    if tampering == "bit flipped":  # bit-rot: anywhere in the file, footer included
        bit = data.draw(st.integers(0, len(before) * 8 - 1), label="bit")
        flipped = bytearray(before)
        flipped[bit // 8] ^= 1 << (bit % 8)
        target.write_bytes(bytes(flipped))
    else:
        frame = pl.read_parquet(target)
        assume(frame.height > 0)
        if tampering == "value":
            column = data.draw(st.sampled_from(frame.columns), label="column")
            row = data.draw(st.integers(0, frame.height - 1), label="row")
            frame = one_value_changed(column, row)(frame)
        else:
            frame = frame.reverse()
        frame.write_parquet(target, **PARQUET_OPTIONS)
        assume(target.read_bytes() != before)
    with pytest.warns(StoreWarning) as caught:
        manifest = again(workdir, tmp_path, pm, layout)
    assert warned(caught, target), [str(w.message) for w in caught]
    assert stored(manifest) == clean
