"""A step recomputed with other rows than before makes the steps after it recompute too.

Step folders are named by the spec's fingerprint chain, and a step was reused when its own files
agreed with its own marker. A step recomputed in its folder (its store damaged or deleted, its
images lost) can give other rows (a transient HTTP failure, a nondeterministic model): every
later step whose folder was intact was reused on the old rows, and the run's output mixed the
two. Now each marker records the digest of its input's marker (curate.inputdigest), and a step
whose input changed since it ran is recomputed, with a StoreWarning saying so; a recompute that
stores the same bytes changes nothing after it.

``stamp`` stands in for such a step: it writes a column from outside the spec (``STAMP``), as a
download writes what a server answered.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.hookspecs import hookimpl
from curate.inputdigest import IDENTITY_FIELDS, INPUT_RECORD, marker_digest
from curate.runstore import COMPLETE, StoreWarning
from curate.shapes import step_marker_problem
from curate.shards import PARQUET_OPTIONS
from curate.step import Step
from curate.testing import run_spec
from tests.conftest import sample_table

STAMP = {"value": "a"}


class Stamp(Step):
    """Writes ``STAMP`` into every row: its output depends on something the spec does not say."""

    name = "stamp"
    writes = {"stamp": pl.Utf8}

    def process_shard(self, table, ctx):
        return table.with_columns(pl.lit(STAMP["value"]).alias("stamp"))


class FusableStamp(Stamp):
    name = "fusable_stamp"
    thread_safe = True


class TableStamp(Stamp):
    name = "table_stamp"
    scope = "table"

    def process_table(self, table, ctx):
        for frame in table.scan().collect().iter_slices(7):
            yield self.process_shard(frame, ctx)


class StampSteps:
    @hookimpl
    def curate_register_steps(self):
        return [Stamp, FusableStamp, TableStamp]


@pytest.fixture
def stamp_pm(pm, register_plugin):
    register_plugin(StampSteps(), "stamp_steps")
    STAMP["value"] = "a"
    yield pm
    STAMP["value"] = "a"


# How the stamp runs: alone among steps alone; alone before a fused group; first member of a fused
# group; head of a group (a table step) whose followers are fused with it.
LAYOUTS = {
    "alone": ("stamp", {"fuse": False}),
    "before_group": ("stamp", {"fuse": True, "fuse_heads": False}),
    "in_group": ("fusable_stamp", {"fuse": True, "fuse_heads": False}),
    "heads_group": ("table_stamp", {"fuse": True, "fuse_heads": True}),
}


def spec(layout: str) -> dict:
    stamp, run = LAYOUTS[layout]
    return {
        "name": "chain",
        "source": {"path": "data.parquet"},
        "steps": [
            {"step": stamp, "name": "stamp"},
            {"step": "normalize_text", "params": {"min_length": 3}},
            {"step": "filter", "params": {"where": "score >= 0.2", "reason": "low_score"}},
            {"step": "exact_dedup", "params": {"columns": ["url", "alt_text"]}},
        ],
        "outputs": [{"format": "parquet", "path": "out.parquet"}],
        "run": {"shard_size": 10, "report": False, **run},
    }


def first_run(workdir: Path, pm, layout: str) -> dict:
    return run_spec(spec(layout), workdir, tables={"data.parquet": sample_table(40)}, pm=pm)


def again(workdir: Path, pm, layout: str) -> dict:
    return run_spec(spec(layout), workdir, pm=pm)


def clean_output(tmp_path: Path, workdir: Path, pm, layout: str) -> bytes:
    """What a clean run on the same data, with STAMP as it is now, writes."""
    clean = tmp_path / "clean"
    clean.mkdir()
    shutil.copy(workdir / "data.parquet", clean / "data.parquet")
    run_spec(spec(layout), clean, pm=pm)
    return (clean / "run" / "out.parquet").read_bytes()


def folder(manifest: dict, label: str) -> Path:
    return Path(next(r["path"] for r in manifest["steps"] if r["label"] == label))


def cached(manifest: dict) -> list[bool]:
    return [r["cached"] for r in manifest["steps"]]


def said(caught) -> str:
    return "\n".join(str(w.message) for w in caught if issubclass(w.category, StoreWarning))


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_a_step_recomputed_with_other_rows_recomputes_the_steps_after_it(stamp_pm, workdir, tmp_path, layout):
    """Before, the steps after the stamp (or after its group) were reused: the output kept 'a'."""
    first = first_run(workdir, stamp_pm, layout)
    assert pl.read_parquet(workdir / "run" / "out.parquet")["stamp"].unique().to_list() == ["a"]
    group = first["steps"][1].get("fused") or ["stamp"]
    # Recomputed with the same rows (its folder deleted): byte for byte the same files, nothing
    # after it runs again.
    for label in group:
        shutil.rmtree(folder(first, label))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        manifest = again(workdir, stamp_pm, layout)
    assert cached(manifest) == [True] + [r["label"] not in group for r in manifest["steps"][1:]]
    # Recomputed with other rows: every step after it runs again, and says why.
    STAMP["value"] = "b"
    for label in group:
        shutil.rmtree(folder(first, label))
    with pytest.warns(StoreWarning) as caught:
        manifest = again(workdir, stamp_pm, layout)
    assert cached(manifest) == [True, False, False, False, False]
    after = manifest["steps"][len(group) + 1]  # the first step after the stamp's group
    before = manifest["steps"][len(group)]["label"]
    why = f"its input changed since it ran (step '{before}' was recomputed)"
    assert after["cache_rejected"] == why
    assert f"step '{after['label']}' is recomputed: {why}" in said(caught)
    out = workdir / "run" / "out.parquet"
    assert pl.read_parquet(out)["stamp"].unique().to_list() == ["b"]
    assert out.read_bytes() == clean_output(tmp_path, workdir, stamp_pm, layout)


def test_a_shard_recomputed_with_other_rows_recomputes_the_steps_after_it(stamp_pm, workdir):
    """Only the damaged shard of the stamp runs again, with 'b': its step's files differ, so the
    steps after it run again on the mix (before, the output had no 'b')."""
    first = first_run(workdir, stamp_pm, "alone")
    shard = folder(first, "stamp") / "data" / "shard-00003.parquet"
    frame = pl.read_parquet(shard)
    frame.with_columns(pl.col("stamp").str.to_uppercase()).write_parquet(shard, **PARQUET_OPTIONS)
    STAMP["value"] = "b"
    with pytest.warns(StoreWarning) as caught:
        manifest = again(workdir, stamp_pm, "alone")
    assert "step 'stamp', shard 3 was recomputed" in said(caught)
    assert cached(manifest) == [True, False, False, False, False]
    stamps = pl.read_parquet(folder(manifest, "stamp") / "data" / "*.parquet").select("uid", "stamp")
    assert sorted(set(stamps["stamp"])) == ["a", "b"]
    out = pl.read_parquet(workdir / "run" / "out.parquet").select("uid", "stamp")
    assert "b" in out["stamp"].to_list()
    assert out.join(stamps, on="uid", how="anti").height == 0
    assert out.join(stamps, on=["uid", "stamp"], how="anti").height == 0  # every row as the stamp has it now


def test_a_cut_off_step_whose_input_changed_starts_over(stamp_pm, workdir, tmp_path):
    """A step killed after some shards, resumed after its input was recomputed with other rows,
    recomputes its finished shards too (before, it kept them: the output had 'a' and 'b')."""
    first = first_run(workdir, stamp_pm, "alone")
    normalize = folder(first, "normalize_text")
    (normalize / COMPLETE).unlink()
    for marker in sorted((normalize / "shards").glob("*.json"))[2:]:
        marker.unlink()  # killed after shards 0 and 1
    shutil.rmtree(folder(first, "stamp"))
    STAMP["value"] = "b"
    message = ("step 'normalize_text' starts over: what it had computed before it was cut off came from "
               "another input: its input changed since it ran (step 'stamp' was recomputed)")
    with pytest.warns(StoreWarning) as caught:
        again(workdir, stamp_pm, "alone")
    assert message in said(caught)
    out = workdir / "run" / "out.parquet"
    assert pl.read_parquet(out)["stamp"].unique().to_list() == ["b"]
    assert out.read_bytes() == clean_output(tmp_path, workdir, stamp_pm, "alone")


@pytest.mark.parametrize(("field", "damage", "why"), [
    ("input_digest", 42, "is damaged: input_digest must be"),
    ("input_digest", "A" * 64, "is damaged: input_digest must be"),
    ("input_from", "../../../etc", "is damaged: input_from must be"),
    ("input_from", "f" * 20, "its marker names 'ffffffffffffffffffff' as its input, which is not a step before it"),
])
def test_a_marker_whose_input_is_damaged_is_recomputed(stamp_pm, workdir, field, damage, why):
    first = first_run(workdir, stamp_pm, "alone")
    marker = folder(first, "normalize_text") / COMPLETE
    stats = json.loads(marker.read_text())
    assert re.fullmatch("[0-9a-f]{64}", stats["input_digest"])
    assert stats["input_from"] == folder(first, "stamp").name
    marker.write_text(json.dumps({**stats, field: damage}))
    with pytest.warns(StoreWarning) as caught:
        manifest = again(workdir, stamp_pm, "alone")
    assert "step 'normalize_text' is recomputed: " in said(caught) and why in said(caught)
    assert cached(manifest) == [True, True, False, True, True]  # the same rows again: nothing after it


def test_a_marker_written_before_input_digests_is_trusted(stamp_pm, workdir):
    """A store written by an earlier curate has no input digests: its steps are reused as before
    (recomputing every cached step of a store on upgrading would cost more than it guards)."""
    first = first_run(workdir, stamp_pm, "alone")
    for record in first["steps"][2:]:
        marker = folder(first, record["label"]) / COMPLETE
        stats = json.loads(marker.read_text())
        del stats["input_digest"], stats["input_from"]
        marker.write_text(json.dumps(stats))
        (marker.parent / INPUT_RECORD).unlink(missing_ok=True)
    shutil.rmtree(folder(first, "stamp"))
    STAMP["value"] = "b"
    manifest = again(workdir, stamp_pm, "alone")
    assert cached(manifest) == [True, False, True, True, True]
    assert pl.read_parquet(workdir / "run" / "out.parquet")["stamp"].unique().to_list() == ["a"]


DIGEST = "0123456789abcdef" * 4
FROM = "0123456789abcdef0123"


def test_the_marker_shape_takes_an_input_and_refuses_anything_else():
    assert step_marker_problem({"rows_in": 1, "input_digest": DIGEST, "input_from": FROM}) is None
    assert step_marker_problem({"rows_in": 1}) is None  # written before input digests
    for bad in (None, 7, [DIGEST], DIGEST[:-1], DIGEST.upper(), DIGEST[:-1] + "x", DIGEST + "0"):
        problem = step_marker_problem({"rows_in": 1, "input_digest": bad, "input_from": FROM})
        assert "input_digest must be" in problem, bad
    for bad in (None, 7, "../" + FROM[3:], "/etc", FROM[:-1], FROM.upper(), FROM + "0"):
        problem = step_marker_problem({"rows_in": 1, "input_digest": DIGEST, "input_from": bad})
        assert "input_from must be" in problem, bad
    assert "input_from is missing" in step_marker_problem({"input_digest": DIGEST})
    assert "input_digest is missing" in step_marker_problem({"input_from": FROM})


PATHS = [f"{kind}/shard-{i:05d}.parquet" for kind in ("data", "dropped") for i in range(4)]
FINGERPRINTS = st.dictionaries(st.sampled_from(PATHS),
                               st.builds("{} bytes, crc32 {:08x}".format, st.integers(0, 10**9),
                                         st.integers(0, 2**32 - 1)), min_size=1, max_size=6)


@st.composite
def markers(draw) -> dict:
    return {"rows_in": draw(st.integers(0, 10**6)), "rows_out": draw(st.integers(0, 10**6)),
            "dropped": draw(st.dictionaries(st.text(min_size=1, max_size=5), st.integers(0, 99), max_size=2)),
            "shards": draw(st.integers(1, 9)), "files": draw(FINGERPRINTS),
            **({"input_digest": DIGEST} if draw(st.booleans()) else {})}


@settings(max_examples=25, deadline=None)
@given(stats=markers(), seconds=st.floats(0, 1e6, allow_nan=False), finished=st.text(max_size=30),
       summary=st.dictionaries(st.text(max_size=5), st.integers(), max_size=3), retried=st.integers(0, 99))
def test_the_digest_ignores_timings_and_the_summary(stats, seconds, finished, summary, retried):
    timed = {**stats, "seconds": seconds, "shard_seconds": seconds / 2, "group_seconds": seconds,
             "finished_at": finished, "summary": summary, "retried_rows": retried}
    assert marker_digest(timed) == marker_digest(stats)
    assert set(timed) - set(IDENTITY_FIELDS) == {"seconds", "shard_seconds", "group_seconds", "finished_at",
                                                 "summary", "retried_rows"}


@settings(max_examples=25, deadline=None)
@given(stats=markers(), data=st.data())
def test_the_digest_changes_with_any_file_fingerprint(stats, data):
    path = data.draw(st.sampled_from(sorted(stats["files"])))
    old = stats["files"][path]
    new = data.draw(FINGERPRINTS.map(lambda files: next(iter(files.values()))).filter(lambda f: f != old))
    changed = {**stats, "files": {**stats["files"], path: new}}
    assert marker_digest(changed) != marker_digest(stats)
    other = data.draw(st.sampled_from(["rows_out", "shards"]))
    assert marker_digest({**stats, other: stats[other] + 1}) != marker_digest(stats)
    assert marker_digest({**stats, "input_digest": "f" * 64}) != marker_digest(stats)
