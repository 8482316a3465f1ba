"""How often a process reads metadata_match's list: once to validate, once to plan and run, once
in a worker that builds the automaton; never a read older than the file (an edit is read again,
and a run whose list changed after planning stops instead of storing output under the old list's
fingerprint). A 500k-entry list takes ~0.1 s and 30-60 MB a read; planning asked for it 2-4 times."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from curate_metadata import entries as entries_module
from curate_metadata.entries import MetadataError
from curate_metadata.match import MetadataMatch

from curate.engine import Engine
from curate.errors import SpecError
from curate.plan import make_plan
from curate.spec import load_spec_text
from curate.step import StepContext


@pytest.fixture
def reads(monkeypatch) -> dict[str, int]:
    """Counts the reads of a list file (text or table) by wrapping the two readers."""
    counts = {"reads": 0}
    for name in ("read_lines", "read_table"):
        reader = getattr(entries_module, name)

        def counted(*args: Any, reader: Any = reader) -> Any:
            counts["reads"] += 1
            return reader(*args)

        monkeypatch.setattr(entries_module, name, counted)
    return counts


@pytest.fixture
def settled(monkeypatch) -> None:
    """A file just written counts as settled (by default one changed under 2 s before it was read
    is read again, in case a later change left its times as they were): here nothing writes it
    while it is read, and each test's change also moves the file's time."""
    monkeypatch.setattr(entries_module, "SETTLED_NS", 0)


def texts() -> pl.DataFrame:
    return pl.DataFrame({"url": [f"https://example.com/{i}.jpg" for i in range(6)],
                         "alt_text": ["a red cup", "ein rot Becher", "blue", "blau", "a red star", "nothing"],
                         "lang": ["en", "de", "en", "de", "en", "en"]})


def write_lists(folder: Path) -> None:
    (folder / "entries.txt").write_text("red\nblue\nrot\nblau\n")
    pl.DataFrame({"entry": ["red", "blue", "rot", "blau"],
                  "language": ["en", "en", "de", "de"]}).write_parquet(folder / "entries.parquet")


def plan_of(folder: Path, pm: Any, match: dict[str, Any], t: Any, untrusted: bool = False) -> Any:
    texts().write_parquet(folder / "in.parquet")
    spec = {"name": "reads", "source": {"format": "parquet", "path": "in.parquet"},
            "steps": [{"step": "metadata_match", "params": match}, {"step": "metadata_balance", "params": {"t": t}}],
            "run": {"dir": "run", "seed": 0, "report": False, "untrusted": untrusted}}
    return make_plan(load_spec_text(yaml.safe_dump(spec), folder / "spec.yaml"), pm, folder / "run")


@pytest.mark.parametrize("match, t", [
    ({"entries": "entries.txt"}, 2),
    ({"entries": "entries.parquet", "language": "lang"}, {"en": 2, "de": 1}),  # balance checks t against it
])
def test_a_process_reads_the_list_once_to_validate_and_run(metadata_pm, tmp_path, monkeypatch, reads, settled,
                                                           match, t):
    """It was read for the plan check, the fingerprint, metadata_balance's per-language t and
    setup: 2-3 reads to validate, 3-4 to run."""
    monkeypatch.chdir(tmp_path)  # --untrusted: the list must lie inside the working directory
    write_lists(tmp_path)
    plan = plan_of(tmp_path, metadata_pm, match, t, untrusted=True)
    assert reads["reads"] == 1
    manifest = Engine(plan, metadata_pm).run()
    assert reads["reads"] == 1
    assert manifest["steps"][1]["summary"]["entries"] == 4 and manifest["steps"][2]["rows_out"] > 0


def test_a_bad_list_is_read_once_to_say_so(metadata_pm, tmp_path, reads, settled):
    """The plan check and the fingerprint each read it to the bad line."""
    (tmp_path / "entries.txt").write_text("red\n" * 1000 + "x" * 5000 + "\n")
    with pytest.raises(SpecError, match="line 1,001 is longer than the 1,000 characters"):
        plan_of(tmp_path, metadata_pm, {"entries": str(tmp_path / "entries.txt")}, 2)
    assert reads["reads"] == 1


def edit(path: Path, text: str) -> None:
    """Writes ``text`` and moves the file's time on by a second: a clock tick of the file system
    could otherwise leave it as it was (what SETTLED_NS guards against outside these tests)."""
    before = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def test_a_list_edited_since_it_was_read_is_read_again(tmp_path, reads, settled):
    write_lists(tmp_path)
    step = MetadataMatch(MetadataMatch.Params(entries=str(tmp_path / "entries.txt")))
    first = step.fingerprint_extra()
    assert step.fingerprint_extra() == first and reads["reads"] == 1
    edit(tmp_path / "entries.txt", "red\nblue\nrot\nBLAU\n")  # same size
    assert step.fingerprint_extra() != first and reads["reads"] == 2
    assert step._entries().entries[-1] == "BLAU"


def test_a_list_written_just_now_is_read_each_time(tmp_path, monkeypatch, reads):
    """Its next change may fall in the same tick of the file system's clock and leave its size and
    times as they were: such a read is not reused. ("Just now" is the last hour here, so that a
    slow machine cannot let the file settle between the write and the reads.)"""
    monkeypatch.setattr(entries_module, "SETTLED_NS", 3600 * 10**9)
    write_lists(tmp_path)
    step = MetadataMatch(MetadataMatch.Params(entries=str(tmp_path / "entries.txt")))
    step.fingerprint_extra()
    step.fingerprint_extra()
    assert reads["reads"] == 2


def test_the_path_is_checked_on_each_ask_even_when_the_read_is_reused(tmp_path, monkeypatch, reads, settled):
    """A reused read skips only the reading: an --untrusted list reached by another way later is
    still refused."""
    monkeypatch.chdir(tmp_path)
    write_lists(tmp_path)
    step = MetadataMatch(MetadataMatch.Params(entries="entries.txt"))
    step.untrusted = True
    step.fingerprint_extra()
    (tmp_path / "entries.txt").rename(tmp_path / "real.txt")
    (tmp_path / "entries.txt").symlink_to("/etc/passwd")
    with pytest.raises(MetadataError, match="is a link to /etc/passwd, outside the working directory"):
        step._entries()
    assert reads["reads"] == 1


def context(tmp_path: Path) -> StepContext:
    return StepContext(run_dir=tmp_path, label="metadata_match", seed=0, artifacts=tmp_path / "artifacts")


def test_a_worker_reads_the_list_itself_once(tmp_path, reads, settled):
    """A Ray actor gets the planned step pickled: the planning process's read does not travel
    with it, and the worker's own read builds the automaton."""
    write_lists(tmp_path)
    step = MetadataMatch(MetadataMatch.Params(entries=str(tmp_path / "entries.txt")))
    step.fingerprint_extra()
    sent = pickle.dumps(step)
    assert b"blau" not in sent
    worker = pickle.loads(sent)
    worker.setup(context(tmp_path))
    assert reads["reads"] == 2
    assert worker.matcher is not None and worker.entry_list.entries == ("red", "blue", "rot", "blau")


@pytest.mark.parametrize("in_a_worker", [False, True])
def test_a_list_changed_after_planning_stops_the_step(tmp_path, settled, in_a_worker):
    """Its output would be stored under the fingerprint of the list as it was planned: a later
    run with the old list would reuse output matched against the new one."""
    write_lists(tmp_path)
    step = MetadataMatch(MetadataMatch.Params(entries=str(tmp_path / "entries.txt")))
    step.fingerprint_extra()
    edit(tmp_path / "entries.txt", "red\nblue\n")
    if in_a_worker:
        step = pickle.loads(pickle.dumps(step))
    with pytest.raises(MetadataError, match="entries.txt changed after the run was planned"):
        step.setup(context(tmp_path))
