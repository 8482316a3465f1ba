"""Sources in a bucket are checked as local files are: every object's columns at validation (Parquet
footers and text files' first lines, not their data), within bounds, and the rest once downloaded,
before any row is read; errors name the object's URL. Against moto's S3 server on loopback."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import curate_basics.remote_schemas
import curate_basics.sources
import polars as pl
import pytest
import yaml

from curate.errors import SourceError, SpecError
from curate.plan import make_plan
from curate.spec import load_spec
from curate.testing.runner import read_step_output, run_spec
from tests.storage.conftest import S3

pytestmark = pytest.mark.network

GOOD = pl.DataFrame({"url": ["https://a/1.jpg", "https://a/2.jpg"], "alt_text": ["one", "two"], "score": [0.5, 0.25]})


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def jsonl_bytes(rows: list[dict]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def plan_problems(source: dict, workdir: Path, pm) -> str:
    spec = workdir / "spec.yaml"
    workdir.mkdir(parents=True, exist_ok=True)
    spec.write_text(yaml.safe_dump({"name": "s3", "source": source, "steps": []}))
    with pytest.raises(SpecError) as caught:
        make_plan(load_spec(spec), pm, workdir / "run")
    return str(caught.value)


def downloaded(workdir: Path) -> list[Path]:
    return [p for p in (workdir / "run" / "tmp" / "source").rglob("*") if p.is_file()]


@pytest.mark.parametrize("late, message", [
    (GOOD.drop("score").with_columns(width=pl.lit(3)),
     "{late} has no column 'score'; {late} has column 'width', which {first} has not"),
    (GOOD.with_columns(score=pl.lit("high")), "column 'score' is Float64 in {first} but String in {late}"),
])
def test_every_parquet_objects_footer_is_checked_at_validation(pm, s3: S3, tmp_path, late, message):
    """Only the first object was checked: a later one failed mid-run or lost its columns."""
    for name in ("a", "b", "c"):
        s3.put(f"data/{name}.parquet", parquet_bytes(GOOD))
    s3.put("data/d.parquet", parquet_bytes(late))
    problems = plan_problems({"path": s3.url("data/")}, tmp_path, pm)
    assert "the files of the source disagree: " in problems
    assert message.format(first=s3.url("data/a.parquet"), late=s3.url("data/d.parquet")) in problems
    assert "same columns with the same types" in problems
    assert downloaded(tmp_path) == [], "validation reads footers, it does not download the objects"


def test_a_footer_larger_than_the_first_range_is_read_whole(pm, s3: S3, tmp_path, monkeypatch):
    monkeypatch.setattr(curate_basics.remote_schemas, "TAIL", 16)  # every footer needs a second request
    s3.put("data/a.parquet", parquet_bytes(GOOD))
    s3.put("data/b.parquet", parquet_bytes(GOOD.with_columns(score=pl.lit("high"))))
    problems = plan_problems({"path": s3.url("data/*.parquet")}, tmp_path, pm)
    assert f"column 'score' is Float64 in {s3.url('data/a.parquet')} but String in {s3.url('data/b.parquet')}" \
        in problems


@pytest.mark.parametrize("data, said", [
    (b"", "it does not end in Parquet's footer (PAR1)"),
    (b"not parquet at all, just some text", "it does not end in Parquet's footer (PAR1)"),
    (b"PAR1" + b"\x15\x00damaged footer" + (16).to_bytes(4, "little") + b"PAR1", "its footer: parquet: "),
])
def test_an_object_that_is_not_parquet_is_named(pm, s3: S3, tmp_path, data, said):
    s3.put("data/a.parquet", parquet_bytes(GOOD))
    s3.put("data/b.parquet", data)
    problems = plan_problems({"path": s3.url("data/")}, tmp_path, pm)
    assert f"cannot read {s3.url('data/b.parquet')} as parquet: {said}" in problems


def test_past_the_validation_bounds_objects_are_checked_once_downloaded(pm, s3: S3, tmp_path, monkeypatch, caplog):
    """A listing larger than validation fetches: it says what it left, and the run refuses the odd
    object before it reads a row."""
    monkeypatch.setattr(curate_basics.remote_schemas, "MAX_OBJECTS", 2)
    for name in ("a", "b", "c"):
        s3.put(f"data/{name}.parquet", parquet_bytes(GOOD))
    s3.put("data/d.parquet", parquet_bytes(GOOD.with_columns(score=pl.lit("high"))))
    spec = {"name": "s3", "source": {"path": s3.url("data/")}, "steps": [], "run": {"dir": "run"}}
    with caplog.at_level(logging.WARNING, logger="curate_basics"), pytest.raises(SourceError) as caught:
        run_spec(spec, tmp_path, pm=pm)
    assert (f"validation checked the columns of the first 2 of 4 objects (it fetches at most 2 objects, 1024 MiB); "
            f"the other 2, from {s3.url('data/c.parquet')} on, are checked when the run has downloaded them") \
        in caplog.text
    assert (f"column 'score' is Float64 in {s3.url('data/a.parquet')} but String in {s3.url('data/d.parquet')}"
            in str(caught.value))
    assert not list((tmp_path / "run").rglob("shard-*.parquet"))


def test_a_wider_type_past_the_validation_bounds_is_refused(pm, s3: S3, tmp_path, monkeypatch):
    """Local files of Int64 and Float64 are read as Float64; the plan took Int64 from the objects it
    checked, so a Float64 object past them would fail a cast mid-run (or round its values)."""
    monkeypatch.setattr(curate_basics.remote_schemas, "MAX_BYTES", 1)  # the first object only
    s3.put("data/a.parquet", parquet_bytes(GOOD.with_columns(score=pl.lit(1, dtype=pl.Int64))))
    s3.put("data/b.parquet", parquet_bytes(GOOD))
    spec = {"name": "s3", "source": {"path": s3.url("data/")}, "steps": [], "run": {"dir": "run"}}
    with pytest.raises(SourceError) as caught:
        run_spec(spec, tmp_path, pm=pm)
    assert (f"the objects of the source disagree: 'score' is Float64 in {s3.url('data/b.parquet')}, but Int64 in "
            f"the objects validation checked (from {s3.url('data/a.parquet')})") in str(caught.value)


def test_csv_and_jsonl_objects_are_checked_by_their_first_lines(pm, s3: S3, tmp_path):
    s3.put("csv/a.csv", b"url,alt_text\nu1,t1\n")
    s3.put("csv/b.csv", b"url,caption\nu2,t2\n")
    problems = plan_problems({"path": s3.url("csv/")}, tmp_path / "csv", pm)
    assert f"{s3.url('csv/b.csv')} has no column 'alt_text'" in problems
    s3.put("jsonl/a.jsonl", jsonl_bytes([{"url": "u1", "alt_text": "t1"}]))
    s3.put("jsonl/b.jsonl", jsonl_bytes([{"url": "u2", "alt_text": "t2"}, {"url": "u3", "alt_text": 3}]))
    problems = plan_problems({"path": s3.url("jsonl/")}, tmp_path / "jsonl", pm)
    assert f"cannot read {s3.url('jsonl/b.jsonl')} as jsonl, line 2: 'alt_text' is a number (3) where line 1 has text" \
        in problems
    assert "tmp/source" not in problems, "the object is named, not its local copy"


def test_a_large_jsonl_object_is_checked_by_its_first_lines_and_then_whole(pm, s3: S3, tmp_path, monkeypatch):
    """Validation fetches the lines the schema is read from (not the object); the run checks the
    lines past them in the downloaded object, as in a local file, naming the object."""
    monkeypatch.setattr(curate_basics.sources, "JSONL_SCAN_LIMIT", 8000)
    rows = [{"url": f"u{i}", "alt_text": f"t{i}"} for i in range(1000)]
    s3.put("data/a.jsonl", jsonl_bytes([*rows, {"url": "u", "alt_text": "t", "extra": 7}]))
    spec = {"name": "s3", "source": {"path": s3.url("data/")}, "steps": [], "run": {"dir": "run"}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    make_plan(load_spec(tmp_path / "spec.yaml"), pm, tmp_path / "run")
    assert downloaded(tmp_path) == [], "the copy of the object's first lines is gone, and no more was fetched"
    with pytest.raises(SourceError) as caught:
        run_spec(spec, tmp_path, pm=pm)
    assert (f"cannot read {s3.url('data/a.jsonl')} as jsonl, line 1001: key 'extra' (7) is on no line of the first "
            "8000 bytes") in str(caught.value)


@pytest.mark.parametrize("name, data", [
    ("d.csv", b"url,alt_text,n\nhttps://a/1.jpg,one,1\nhttps://a/2.jpg,two,2\n"),
    ("d.jsonl", jsonl_bytes([{"url": f"https://a/{i}.jpg", "alt_text": f"t{i}", "n": i} for i in range(300)])),
])
def test_a_valid_text_object_gives_the_local_files_rows(pm, s3: S3, tmp_path, monkeypatch, name, data):
    monkeypatch.setattr(curate_basics.sources, "JSONL_SCAN_LIMIT", 8000)  # past the first lines of the .jsonl
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / name).write_bytes(data)
    s3.put(f"data/{name}", data)
    local = run_spec({"source": {"path": name}, "steps": []}, tmp_path / "local", pm=pm)
    remote = run_spec({"source": {"path": s3.url("data/")}, "steps": []}, tmp_path / "remote", pm=pm)
    assert read_step_output(remote, "source").equals(read_step_output(local, "source"))


def test_curate_validate_names_the_objects_that_disagree(s3: S3, tmp_path):
    from tests.storage.test_s3 import cli

    s3.put("data/a.parquet", parquet_bytes(GOOD))
    s3.put("data/b.parquet", parquet_bytes(GOOD.rename({"alt_text": "caption"})))
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({"name": "s3", "source": {"path": s3.url("data/")}}))
    result = cli(tmp_path, s3, "validate", "spec.yaml")
    print(f"\n{result.stderr}")
    assert result.code == 2 and "Traceback" not in result.stderr
    assert (f"{s3.url('data/b.parquet')} has no column 'alt_text'; {s3.url('data/b.parquet')} has column 'caption', "
            f"which {s3.url('data/a.parquet')} has not") in result.stderr


def test_a_compressed_object_is_checked_by_its_first_lines_and_read_whole(pm, s3: S3, tmp_path, monkeypatch):
    """A .jsonl.gz object was refused. Validation fetches the object's first bytes and decompresses
    the lines they hold (not the object); the run reads it whole, as the local file, naming the object."""
    import gzip

    monkeypatch.setattr(curate_basics.sources, "JSONL_SCAN_LIMIT", 8000)
    rows = [{"url": f"https://a/{i}.jpg", "alt_text": f"photo {i}", "n": i} for i in range(3000)]
    data = gzip.compress(jsonl_bytes(rows), compresslevel=1)
    assert len(data) > 8000, "more than validation fetches"
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "d.jsonl.gz").write_bytes(data)
    s3.put("data/d.jsonl.gz", data)
    spec = {"name": "s3", "source": {"path": s3.url("data/")}, "steps": [], "run": {"dir": "run"}}
    (tmp_path / "remote").mkdir()
    (tmp_path / "remote" / "spec.yaml").write_text(yaml.safe_dump(spec))
    make_plan(load_spec(tmp_path / "remote" / "spec.yaml"), pm, tmp_path / "remote" / "run")
    assert downloaded(tmp_path / "remote") == [], "validation fetched a prefix, and its copy is gone"
    local = run_spec({"source": {"path": "d.jsonl.gz"}, "steps": []}, tmp_path / "local", pm=pm)
    remote = run_spec(spec, tmp_path / "remote", pm=pm)
    assert read_step_output(remote, "source").equals(read_step_output(local, "source"))
    s3.put("data/d.jsonl.gz", data[:-50])
    with pytest.raises(SourceError) as caught:
        run_spec(spec, tmp_path / "cut", pm=pm)
    assert f"cannot read {s3.url('data/d.jsonl.gz')}: it is cut short" in str(caught.value)
