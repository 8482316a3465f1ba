"""What a source's folder or name holds besides plain data files: files compressed in a way curate
does not read, links to folders, links to nothing (hostile-tables probe: each was skipped or misread
without a word)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from curate.errors import SpecError
from curate.plan import make_plan
from curate.spec import load_spec
from curate.testing import run_spec
from curate.testing.runner import read_step_output


def plan_problems(spec_path: Path, pm) -> str:
    with pytest.raises(SpecError) as caught:
        make_plan(load_spec(spec_path), pm, spec_path.parent / "run")
    return str(caught.value)


def csv(path: Path, rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("url,alt_text\n" + "".join(f"https://a/{path.stem}{i}.jpg,x{i}\n" for i in range(rows)))


GZIPPED = gzip.compress(b"url,alt_text\nhttps://b/1.jpg,y\n")


LZ4_LEGACY = bytes.fromhex("02214c18")  # lz4 -l's magic: a format curate does not read
ZIP = b"PK\x03\x04"


@pytest.mark.parametrize("name, fmt, start, said", [
    ("b.jsonl.lz4", "auto", LZ4_LEGACY, "lz4 -dc FILE | lz4 > FILE.new"),
    ("b.tsv.zip", "auto", ZIP, "unzip it")])
def test_a_file_compressed_in_a_way_curate_does_not_read_is_refused_naming_it(pm, workdir, write_spec, name,
                                                                               fmt, start, said):
    """A folder listing skipped it without a word."""
    csv(workdir / "data" / "a.csv", 3)
    (workdir / "data" / name).write_bytes(start + b"\0" * 8)
    problems = plan_problems(write_spec({"source": {"path": "data", "format": fmt}}), pm)
    assert f"{name} is " in problems and said in problems


@pytest.mark.parametrize("name", ["one.csv", "one.csv.lz4", "one.tsv"])
def test_a_file_named_alone_is_told_by_what_it_starts_with(pm, workdir, write_spec, name):
    """Polars read it, while every check around the reader saw the compressed bytes (a cut file
    was 'byte 0x8b is not valid UTF-8')."""
    (workdir / name).write_bytes(LZ4_LEGACY + b"\0" * 8)
    problems = plan_problems(write_spec({"source": {"path": name, "format": "csv"}}), pm)
    assert f"{name} is lz4-compressed in its legacy format (lz4 -l), which curate does not read" in problems
    assert "gzip (.gz), zstd (.zst, .zstd)" in problems
    (workdir / name).write_bytes(GZIPPED)  # gzip, whatever its name: read
    manifest = run_spec({"source": {"path": name, "format": "csv"}}, workdir, pm=pm)
    assert read_step_output(manifest, "source")["url"].to_list() == ["https://b/1.jpg"]


def test_a_link_to_a_folder_is_refused_naming_it(pm, workdir, write_spec):
    """rglob skipped it without a word (a folder read fewer rows than a ** glob), and following it
    let a link to / list the whole machine, before the untrusted check (re-probe)."""
    csv(workdir / "data" / "real" / "a.csv", 2)
    (workdir / "data" / "root").symlink_to("/")
    problems = plan_problems(write_spec({"source": {"path": "data", "format": "csv"}}), pm)
    assert "root is a link to a folder (/)" in problems and "does not follow links to folders" in problems
    (workdir / "data" / "root").unlink()
    (workdir / "data" / "a-link.csv").symlink_to(workdir / "data" / "real" / "a.csv")  # a link to a file is read
    manifest = run_spec({"source": {"path": "data", "format": "csv"}}, workdir, pm=pm)
    assert read_step_output(manifest, "source").height == 4


def test_a_link_to_nothing_is_named(pm, workdir, write_spec):
    csv(workdir / "data" / "a.csv", 1)
    (workdir / "data" / "c.csv").symlink_to(workdir / "gone.csv")
    problems = plan_problems(write_spec({"source": {"path": "data", "format": "csv"}}), pm)
    assert "c.csv is a link to" in problems and "gone.csv, which does not exist" in problems


def test_a_compressed_file_beside_its_decompressed_copy_is_left_to_the_copy(pm, workdir):
    """gunzip -k, as the refusal's hint says, leaves both: the folder was still refused (re-probe)."""
    csv(workdir / "data" / "a.csv", 2)
    (workdir / "data" / "a.csv.gz").write_bytes(gzip.compress((workdir / "data" / "a.csv").read_bytes()))
    manifest = run_spec({"source": {"path": "data", "format": "csv"}}, workdir, pm=pm)
    assert read_step_output(manifest, "source").height == 2


def test_a_link_to_a_folder_below_a_double_star_pattern_is_refused(pm, workdir, write_spec):
    """glob's ** follows links to folders: one to /usr listed for minutes before any check."""
    csv(workdir / "data" / "real" / "a.csv", 2)
    (workdir / "data" / "usr").symlink_to("/usr")
    problems = plan_problems(write_spec({"source": {"path": "data/**/*.csv", "format": "csv"}}), pm)
    assert "usr is a link to a folder (/usr)" in problems
    manifest = run_spec({"source": {"path": "data/real/*.csv", "format": "csv"}}, workdir, pm=pm)  # no **: fine
    assert read_step_output(manifest, "source").height == 2


def test_hive_partition_folders_are_named_in_a_warning(pm, workdir, caplog):
    """data/lang=en/… lost its lang without a word (hostile-tables probe)."""
    import logging

    csv(workdir / "data" / "lang=en" / "a.csv", 1)
    csv(workdir / "data" / "lang=de" / "b.csv", 1)
    with caplog.at_level(logging.WARNING, logger="curate_basics"):
        manifest = run_spec({"source": {"path": "data", "format": "csv"}}, workdir, pm=pm)
    assert read_step_output(manifest, "source").height == 2
    assert "(Hive partitioning) are not read as a column 'lang'" in caplog.text
