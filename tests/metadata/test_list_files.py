"""A metadata list file from someone else: a pipe, a device, a folder, a sparse or binary file, an
entry of a megabyte, a table column of the wrong type, a path out of the working directory of an
--untrusted spec. Each is an error at plan time naming the file and the fix: never a wait, a
crash, gigabytes read, or an internal error."""

from __future__ import annotations

import io
import os
import resource
from pathlib import Path

import polars as pl
import pytest
import yaml
from curate_metadata.entries import MetadataError, load_entries

from curate.errors import SpecError
from curate.plan import make_plan
from curate.spec import load_spec_text
from curate.testing import run_spec, run_step
from tests.core.test_run_dir_safety import no_endless_wait


def rows(texts):
    return pl.DataFrame({"uid": [f"{i:016x}" for i in range(len(texts))], "alt_text": texts,
                         "url": [f"https://example.com/{i}.jpg" for i in range(len(texts))]})


def plan_error(tmp_path, pm, entries, untrusted=False, **params):
    """The SpecError of planning a run of metadata_match with ``entries``, from ``tmp_path``."""
    rows(["a red circle"]).write_parquet(tmp_path / "in.parquet")
    spec = {"name": "lists", "source": {"format": "parquet", "path": "in.parquet"},
            "steps": [{"step": "metadata_match", "params": {"entries": entries, **params}},
                      {"step": "metadata_balance", "params": {"t": 5}}],
            "run": {"dir": "run"}}
    loaded = load_spec_text(yaml.safe_dump(spec), tmp_path / "spec.yaml")
    loaded.spec.run.untrusted = untrusted
    with no_endless_wait(20), pytest.raises(SpecError) as error:
        make_plan(loaded, pm, tmp_path / "run")
    return str(error.value)


@pytest.mark.parametrize("name, make, says", [
    ("list.txt", os.mkfifo, "is a pipe (FIFO), not a file"),
    ("list.parquet", os.mkfifo, "is a pipe (FIFO), not a file"),
    ("list.txt", os.mkdir, "is a folder, not a file"),
    ("list.csv", lambda p: p.symlink_to("/dev/zero"), "is a character device (a link to /dev/zero), not a file"),
])
def test_what_is_not_a_file_is_named_at_its_place_in_the_spec(metadata_pm, tmp_path, monkeypatch, name, make, says):
    """It was 'does not exist (or is not a file)', raised unlocated from the step's fingerprint."""
    monkeypatch.chdir(tmp_path)
    make(tmp_path / name)
    message = plan_error(tmp_path, metadata_pm, name)
    assert f"steps[0].params: metadata list {name} {says}" in message


def test_a_sparse_2_gb_list_is_refused_without_reading_it(metadata_pm, tmp_path):
    """One 2 GB line of NUL bytes: 6 GB of memory, then accepted as one entry."""
    sparse = tmp_path / "sparse.txt"
    with open(sparse, "wb") as handle:
        handle.truncate(2 << 30)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(SpecError, match="is not a text file: line 1 holds a NUL byte"):
        run_step("metadata_match", rows(["a red circle"]), {"entries": str(sparse)}, pm=metadata_pm)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # kB


@pytest.mark.parametrize("content, says", [
    (b"red\n" + b"x" * (1 << 20) + b"\nblue\n", "line 2 is longer than the 1,000 characters"),
    (b"red\nbl\x00ue\n", "is not a text file: line 2 holds a NUL byte"),
    (b"red\n\xff\xfeblue\n", r"is not UTF-8 text \(invalid start byte at byte 4\)"),
])
def test_a_list_that_is_not_one_entry_per_line_is_refused_at_plan_time(metadata_pm, tmp_path, content, says):
    """An entry of a megabyte crashed the run (pyahocorasick frees its trie recursively: a
    segmentation fault); a NUL byte was taken as part of an entry."""
    (tmp_path / "list.txt").write_bytes(content)
    with pytest.raises(SpecError, match=says):
        run_step("metadata_match", rows(["a red circle"]), {"entries": str(tmp_path / "list.txt")}, pm=metadata_pm)


def test_a_long_entry_in_a_table_is_refused_naming_its_row(metadata_pm, tmp_path):
    pl.DataFrame({"entry": ["red", "x" * 5000]}).write_parquet(tmp_path / "list.parquet")
    with pytest.raises(SpecError, match="row 2 is longer than the 1,000 characters"):
        run_step("metadata_match", rows(["a red circle"]), {"entries": str(tmp_path / "list.parquet")}, pm=metadata_pm)


@pytest.mark.parametrize("column, says", [
    (pl.Series("entry", [[1], [2]]), "holds List(Int64), not text"),
    (pl.Series("entry", [{"a": 1}, {"a": 2}]), "holds Struct"),
    (pl.Series("entry", [b"red", b"\xff"]), "holds Binary, not text"),
])
def test_an_entry_column_of_another_type_is_named(metadata_pm, tmp_path, column, says):
    """A list or bytes column was an internal error (a failed cast), a struct became JSON-like text."""
    pl.DataFrame([column]).write_parquet(tmp_path / "list.parquet")
    with pytest.raises(SpecError, match=f"column 'entry' {says}".replace("(", r"\(").replace(")", r"\)")):
        run_step("metadata_match", rows(["a red circle"]), {"entries": str(tmp_path / "list.parquet")}, pm=metadata_pm)


def test_whole_numbers_and_a_byte_order_mark_still_read(tmp_path):
    pl.DataFrame({"entry": [1984, 2001]}).write_parquet(tmp_path / "years.parquet")
    assert load_entries(str(tmp_path / "years.parquet")).entries == ("1984", "2001")
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbfred\r\nblue\n")
    assert load_entries(str(tmp_path / "bom.txt")).entries == ("red", "blue")


def test_a_text_table_of_nul_bytes_is_not_read_to_its_end(tmp_path):
    with open(tmp_path / "list.json", "wb") as handle:
        handle.truncate(2 << 30)
    with pytest.raises(MetadataError, match="holds NUL bytes, so it is not text"):
        load_entries(str(tmp_path / "list.json"))


def test_lines_are_split_as_splitlines_splits_the_whole_text_whatever_the_chunks(monkeypatch):
    from curate_metadata import listfile

    text = "red\r\nblue\rgreen\x0bsky\u2028\n  \nstar\r"
    want = [line for line in text.splitlines() if line.strip()]
    for size in range(1, 12):
        monkeypatch.setattr(listfile, "CHUNK_BYTES", size)
        assert listfile.read_lines(io.BytesIO(text.encode()), Path("x")) == want


@pytest.mark.parametrize("entries, says", [
    ("/etc/passwd", "'/etc/passwd' is outside the working directory"),
    ("~/list.txt", "'~/list.txt' is outside the working directory"),
    ("../list.txt", "'../list.txt' is written with '..' (an untrusted spec may not use '..' whatever it leads to)"),
    ("passwd.txt", "'passwd.txt' is a link to /etc/passwd, outside the working directory"),
])
def test_an_untrusted_spec_reads_no_list_outside_the_working_directory(metadata_pm, tmp_path, monkeypatch,
                                                                       entries, says):
    """The list is copied into the run directory (artifacts/metadata_entries.parquet): /etc/passwd,
    named by a stranger's spec, went wherever the run went."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "passwd.txt").symlink_to("/etc/passwd")
    message = plan_error(tmp_path, metadata_pm, entries, untrusted=True)
    assert f"params.entries: {says}" in message and "--untrusted" in message


def test_an_untrusted_spec_reads_a_list_inside_the_working_directory(metadata_pm, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "entries.txt").write_text("red\ncircle\n")
    spec = {"name": "inside", "source": {"format": "parquet", "path": "in.parquet"},
            "steps": [{"step": "metadata_match", "params": {"entries": "lists/entries.txt"}}],
            "run": {"dir": "run", "untrusted": True, "report": False}}
    manifest = run_spec(spec, tmp_path, tables={"in.parquet": rows(["a red circle", "blue"])}, pm=metadata_pm)
    assert manifest["steps"][-1]["summary"]["entries"] == 2


@pytest.mark.parametrize("damage, says", [
    (lambda p: pl.DataFrame({"id": [0]}).write_parquet(p), "its columns are id Int64"),
    (lambda p: p.write_bytes(b"not parquet"), "is not the table metadata_match wrote there"),
])
def test_a_damaged_entry_table_upstream_names_the_file_and_the_repair(metadata_pm, tmp_path, damage, says):
    """A store from elsewhere: wrong columns there were an internal error in metadata_balance."""
    from curate_metadata.match import ENTRIES_ARTIFACT

    (tmp_path / "entries.txt").write_text("red\ncircle\n")
    table = pl.DataFrame({"url": [f"https://example.com/{i}.jpg" for i in range(20)], "alt_text": ["a red circle"] * 20})
    spec = {"name": "balance", "source": {"format": "parquet", "path": "in.parquet"},
            "steps": [{"step": "metadata_match", "params": {"entries": str(tmp_path / "entries.txt")}},
                      {"step": "metadata_balance", "params": {"t": {"default": 5}}}],
            "run": {"dir": "run", "shard_size": 16, "report": False}}
    with pytest.raises(SpecError):  # a per-language t needs languages: the plan says so
        run_spec(spec, tmp_path, tables={"in.parquet": table}, pm=metadata_pm)
    spec["steps"][1]["params"]["t"] = 5
    manifest = run_spec(spec, tmp_path, tables={"in.parquet": table}, pm=metadata_pm)
    match, balance = (Path(record["path"]) for record in manifest["steps"][1:])
    (balance / "_COMPLETE.json").unlink()
    damage(match / "artifacts" / ENTRIES_ARTIFACT)
    with pytest.raises(MetadataError, match=says) as caught:
        run_spec(spec, tmp_path, pm=metadata_pm)
    assert f"rm -r '{match}'" in caught.value.hint


def test_a_list_whose_dictionary_unpacks_past_its_budget_is_refused(metadata_pm, tmp_path, monkeypatch):
    """207 kB of Parquet, one 1,000-byte entry in 2M rows, took 4.6 GB at validate (security re-probe)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import curate.unpacked

    monkeypatch.setattr(curate.unpacked, "WHOLE_FILE_TEXT", 1_000_000)
    entries = pa.DictionaryArray.from_arrays(pa.array([0] * 5000, pa.int32()), pa.array(["x" * 1000]))
    pq.write_table(pa.table({"entry": entries}), tmp_path / "list.parquet")
    said = plan_error(tmp_path, metadata_pm, str(tmp_path / "list.parquet"))
    assert "list.parquet holds 5.0 MB of text unpacked, more than the 1.0 MB a list may take" in said
