from __future__ import annotations

import os
import time
from pathlib import Path

import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.errors import SpecError
from curate.plan import make_plan
from curate.spec import load_spec
from curate.testing import run_spec
from curate.testing import strategies as cst
from curate.testing.runner import read_step_output

TABLE = pl.DataFrame({
    "url": ["https://a/1.jpg", "https://a/2.jpg", "https://a/3.jpg", "https://a/1.jpg"],
    "alt_text": ["a red circle", "東京タワー, \"quoted\"", "", "a red circle"],
})


def write_as(table: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = path.suffix
    if kind == ".parquet":
        table.write_parquet(path)
    elif kind == ".csv":
        table.write_csv(path)
    elif kind == ".tsv":
        table.write_csv(path, separator="\t", quote_style="never")
    elif kind == ".jsonl":
        table.write_ndjson(path)


def plan_problems(spec_path: Path, pm) -> str:
    with pytest.raises(SpecError) as caught:
        make_plan(load_spec(spec_path), pm, spec_path.parent / "run")
    return str(caught.value)


@pytest.mark.parametrize("filename, source", [
    ("data.parquet", {"format": "parquet"}),
    ("data.csv", {"format": "csv"}),
    ("data.tsv", {"format": "tsv"}),
    ("data.jsonl", {"format": "jsonl"}),
    ("data.csv", {}),  # format auto, by extension
])
def test_every_file_format_gives_the_same_rows_and_uids(pm, workdir, filename, source):
    table = TABLE
    if filename.endswith(".tsv"):  # TSV has no quoting: no quotes in the text, and "" reads as NULL
        table = TABLE.with_columns(pl.col("alt_text").str.replace_all('"', "'", literal=True).replace("", None))
    reference = run_spec({"source": {"path": "ref.parquet"}}, workdir / "ref", tables={"ref.parquet": table}, pm=pm)
    write_as(table, workdir / "other" / filename)
    manifest = run_spec({"source": {"path": filename, **source}}, workdir / "other", pm=pm)
    got = read_step_output(manifest, "source")
    assert got.equals(read_step_output(reference, "source"))
    assert got["uid"].n_unique() == got.height  # the duplicate row still gets its own uid


def test_a_directory_or_glob_reads_files_in_name_order(pm, workdir):
    for i in range(3):
        write_as(TABLE.with_columns(pl.lit(f"part{i}").alias("alt_text")), workdir / "data" / f"part-{i}.parquet")
    (workdir / "data" / "README.md").write_text("not data")
    by_dir = run_spec({"source": {"path": "data"}}, workdir, pm=pm)
    texts = read_step_output(by_dir, "source")["alt_text"].to_list()
    assert texts == ["part0"] * 4 + ["part1"] * 4 + ["part2"] * 4
    by_glob = run_spec({"source": {"path": str(workdir / "data" / "part-*.parquet"), "format": "parquet"}},
                       workdir / "glob", pm=pm)
    assert read_step_output(by_glob, "source")["alt_text"].to_list() == texts


def test_a_directory_and_a_glob_over_the_same_files_read_them_in_one_order(pm, workdir):
    """Folders whose names differ after a common prefix by a character before '/' ('a' and 'a-b'):
    the folder's listing compared folder by folder (a/ first), the glob's as text (a-b/ first)."""
    for folder in ("a", "a-b", "a.b", "a b"):
        write_as(TABLE.with_columns(pl.lit(folder).alias("alt_text")), workdir / "src" / folder / "x.parquet")
    by_dir = run_spec({"source": {"path": str(workdir / "src")}}, workdir / "dir", pm=pm)
    by_glob = run_spec({"source": {"path": str(workdir / "src" / "**" / "*.parquet"), "format": "parquet"}},
                       workdir / "glob", pm=pm)
    texts = read_step_output(by_dir, "source")["alt_text"].unique(maintain_order=True).to_list()
    assert texts == ["a b", "a-b", "a.b", "a"]  # as text: ' ' < '-' < '.' < '/'
    assert read_step_output(by_glob, "source")["alt_text"].unique(maintain_order=True).to_list() == texts


def test_a_file_rewritten_with_its_old_size_and_time_is_read_again(pm, workdir, write_spec):
    """rsync -t, cp -p or a tar unpacked over it leave size and modification time as they were;
    the cache served the old file's rows."""
    first = TABLE.with_columns(pl.lit("aaaa").alias("alt_text"))
    spec = write_spec({"source": {"path": "data.parquet"}, "run": {"dir": "run"}}, table=first)
    stat = (workdir / "data.parquet").stat()
    fingerprint = make_plan(load_spec(spec), pm, workdir / "run").steps[0].fingerprint
    time.sleep(0.01)
    TABLE.with_columns(pl.lit("bbbb").alias("alt_text")).write_parquet(workdir / "data.parquet")
    os.utime(workdir / "data.parquet", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (workdir / "data.parquet").stat().st_size == stat.st_size
    assert make_plan(load_spec(spec), pm, workdir / "run").steps[0].fingerprint != fingerprint


def test_columns_are_mapped_and_kept(pm, workdir):
    source = TABLE.rename({"url": "URL", "alt_text": "TEXT"}).with_columns(pl.lit(1).alias("width"),
                                                                             pl.lit("x").alias("junk"))
    manifest = run_spec({"source": {"path": "d.parquet", "columns": {"url": "URL", "alt_text": "TEXT"},
                                    "keep": ["width"]}}, workdir, tables={"d.parquet": source}, pm=pm)
    out = read_step_output(manifest, "source")
    assert out.columns == ["uid", "url", "alt_text", "width"]


def test_a_source_with_its_own_unique_uids_keeps_them(pm, workdir):
    table = TABLE.with_columns(pl.Series("uid", ["u1", "u2", "u3", "u4"]))
    manifest = run_spec({"source": {"path": "d.parquet"}}, workdir, tables={"d.parquet": table}, pm=pm)
    assert read_step_output(manifest, "source")["uid"].to_list() == ["u1", "u2", "u3", "u4"]


def test_a_source_with_duplicate_uids_is_a_clear_error(pm, workdir):
    from curate.errors import SourceError

    table = TABLE.with_columns(pl.Series("uid", ["u1", "u1", "u3", "u4"]))
    with pytest.raises(SourceError, match="1 duplicate values"):
        run_spec({"source": {"path": "d.parquet"}}, workdir, tables={"d.parquet": table}, pm=pm)


def test_a_source_with_rows_without_a_uid_says_so(pm, workdir):
    from curate.errors import SourceError

    table = TABLE.with_columns(pl.Series("uid", [None, "u2", None, "u4"], dtype=pl.Utf8))
    with pytest.raises(SourceError, match=r"'uid' column is empty \(null\) on 2 of its 4 rows"):
        run_spec({"source": {"path": "d.parquet"}}, workdir, tables={"d.parquet": table}, pm=pm)


@pytest.mark.parametrize("encoded", ["categorical", "dictionary"])
def test_categorical_text_columns_are_read_as_text(pm, workdir, encoded):
    import pyarrow as pa
    import pyarrow.parquet as pq

    if encoded == "categorical":
        TABLE.with_columns(pl.col("alt_text").cast(pl.Categorical)).write_parquet(workdir / "d.parquet")
    else:
        arrow = TABLE.to_arrow()
        pq.write_table(arrow.set_column(0, "url", pa.chunked_array([arrow["url"].combine_chunks().dictionary_encode()])),
                       workdir / "d.parquet")
    manifest = run_spec({"source": {"path": "d.parquet"}, "steps": [{"step": "normalize_text"}]}, workdir, pm=pm)
    out = read_step_output(manifest, "normalize_text")
    assert out.schema["url"] == out.schema["alt_text"] == pl.Utf8
    plain = run_spec({"source": {"path": "p.parquet"}, "steps": [{"step": "normalize_text"}]}, workdir / "plain",
                     tables={"p.parquet": TABLE}, pm=pm)
    assert out.equals(read_step_output(plain, "normalize_text"))  # same uids, same text


def test_changing_the_file_invalidates_the_cache(pm, workdir, write_spec):
    spec = write_spec({"source": {"path": "data.parquet"}, "run": {"dir": "run"}}, table=TABLE)
    first = make_plan(load_spec(spec), pm, workdir / "run").steps[0].fingerprint
    time.sleep(0.01)
    TABLE.head(2).write_parquet(workdir / "data.parquet")
    os.utime(workdir / "data.parquet", ns=(time.time_ns(), time.time_ns() + 10**9))
    assert make_plan(load_spec(spec), pm, workdir / "run").steps[0].fingerprint != first


# -- bad input: one clear problem each, with a hint, never a traceback -----------------------
def test_a_missing_file_says_where_it_looked(pm, write_spec):
    spec = write_spec({"source": {"path": "nope.parquet"}})
    message = plan_problems(spec, pm)
    assert "source.path 'nope.parquet' does not exist" in message
    assert f"a relative path is read from {spec.parent}: the spec file's directory" in message


def test_a_missing_alt_text_column_says_how_to_map_it(pm, write_spec):
    spec = write_spec({"source": {"path": "data.parquet"}}, table=TABLE.rename({"alt_text": "caption"}))
    message = plan_problems(spec, pm)
    assert "the source has no 'alt_text' column" in message
    assert "columns: {alt_text: <source column>}" in message
    assert "caption" in message  # lists what there is
    assert message.count("alt_text' column") == 1  # not echoed by the uid check


def test_a_mapped_column_that_does_not_exist(pm, write_spec):
    spec = write_spec({"source": {"path": "data.parquet", "columns": {"alt_text": "TEXT"}}}, table=TABLE)
    message = plan_problems(spec, pm)
    assert "source.columns.alt_text: the source has no column 'TEXT'" in message


def test_corrupt_parquet(pm, workdir, write_spec):
    (workdir / "data.parquet").write_bytes(b"PAR1" + b"\x00garbage" * 50)
    message = plan_problems(write_spec({"source": {"path": "data.parquet"}}), pm)
    assert "cannot read" in message and "data.parquet" in message


def test_csv_with_a_different_separator_names_it(pm, workdir, write_spec):
    TABLE.write_csv(workdir / "data.csv", separator=";")
    message = plan_problems(write_spec({"source": {"path": "data.csv"}}), pm)
    assert "looks separated by ';'" in message
    assert "separator: ';'" in message
    TABLE.write_csv(workdir / "data.csv", separator=";")
    fixed = write_spec({"source": {"path": "data.csv", "format": "csv", "params": {"separator": ";"}}})
    assert make_plan(load_spec(fixed), pm, workdir / "run").steps[0].output_schema["alt_text"] == pl.Utf8


def test_an_empty_csv(pm, workdir, write_spec):
    (workdir / "data.csv").write_text("")
    assert "cannot read" in plan_problems(write_spec({"source": {"path": "data.csv"}}), pm)


def test_a_directory_without_data_files(pm, workdir, write_spec):
    (workdir / "data").mkdir()
    (workdir / "data" / "notes.txt").write_text("x")
    assert "matched no auto files" in plan_problems(write_spec({"source": {"path": "data"}}), pm)


def test_an_unknown_extension_with_format_auto(pm, workdir, write_spec):
    (workdir / "data.txt").write_text("url,alt_text\n")
    assert "cannot tell the format" in plan_problems(write_spec({"source": {"path": "data.txt"}}), pm)


def test_jsonl_that_is_not_json(pm, workdir, write_spec):
    (workdir / "data.jsonl").write_text('{"url": "a", "alt_text": "b"}\nthis is not json\n')
    spec = write_spec({"source": {"path": "data.jsonl"}, "run": {"dir": "run"}})
    from curate.engine import Engine
    from curate.errors import CurateError

    try:
        plan = make_plan(load_spec(spec), pm, workdir / "run")
    except SpecError as exc:
        assert "data.jsonl" in str(exc)
        return
    with pytest.raises(CurateError, match="could not read .*data.jsonl"):
        Engine(plan, pm).run()


@pytest.mark.parametrize("second, message", [
    (pl.DataFrame({"url": ["c"], "alt_text": ["z"], "width": [3]}),
     "p2.parquet has no column 'score'; {data}/p2.parquet has column 'width', which {data}/p1.parquet has not"),
    (pl.DataFrame({"url": ["c"], "alt_text": ["z"], "score": ["high"]}),
     "column 'score' is Float64 in {data}/p1.parquet but String in {data}/p2.parquet"),
])
def test_files_of_one_source_that_disagree_are_a_clear_error(pm, workdir, write_spec, second, message):
    """Found at validation, from every file's footer, naming both files."""
    (workdir / "data").mkdir()
    pl.DataFrame({"url": ["a"], "alt_text": ["x"], "score": [0.5]}).write_parquet(workdir / "data" / "p1.parquet")
    second.write_parquet(workdir / "data" / "p2.parquet")
    problems = plan_problems(write_spec({"source": {"path": "data"}}), pm)
    assert "the files of the source disagree: " in problems
    assert message.format(data=workdir / "data") in problems
    assert "same columns with the same types" in problems


@pytest.mark.parametrize("fuse_heads", [False, True])
@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_files_may_differ_in_columns_the_source_does_not_keep(pm, workdir, kind, fuse_heads):
    """A source that grows by a file a day meets one with a column more (a new field) or one
    less (a field dropped upstream). With source.keep naming what the run carries, only those
    columns must agree: the run read nothing else, yet refused the files (and keep did not help)."""
    (workdir / "data").mkdir()
    first = pl.DataFrame({"url": ["a", "b"], "alt_text": ["x", "y"], "score": [0.5, 0.25], "width": [3, 4]})
    second = pl.DataFrame({"url": ["c"], "alt_text": ["z"], "score": [0.75], "license": ["cc-by"]})
    for name, frame in (("p1", first), ("p2", second)):
        write_as(frame, workdir / "data" / f"{name}.{kind}")
    source = {"format": kind, "path": "data", "keep": ["score"]}
    manifest = run_spec({"source": source, "run": {"fuse_heads": fuse_heads}}, workdir, pm=pm)
    rows = read_step_output(manifest, "source")
    assert rows.columns == ["uid", "url", "alt_text", "score"]
    assert rows["url"].to_list() == ["a", "b", "c"]
    assert [str(v) for v in rows["score"].to_list()] == ["0.5", "0.25", "0.75"]
    spec_path = workdir / "keep_width.yaml"
    spec_path.write_text(yaml.safe_dump({"name": "w", "source": {**source, "keep": ["score", "width"]}}))
    problems = plan_problems(spec_path, pm)
    assert f"{workdir / 'data'}/p2.{kind} has no column 'width'" in problems
    assert "license" not in problems


def test_files_that_disagree_are_told_of_keep(pm, workdir, write_spec):
    (workdir / "data").mkdir()
    pl.DataFrame({"url": ["a"], "alt_text": ["x"]}).write_parquet(workdir / "data" / "p1.parquet")
    pl.DataFrame({"url": ["c"], "alt_text": ["z"], "license": ["cc"]}).write_parquet(workdir / "data" / "p2.parquet")
    problems = plan_problems(write_spec({"source": {"path": "data"}}), pm)
    assert "p2.parquet has column 'license', which" in problems
    assert "source.keep" in problems


def test_files_whose_types_merely_widen_are_read(pm, workdir):
    (workdir / "data").mkdir()
    pl.DataFrame({"url": ["a"], "alt_text": ["x"], "score": [0.5]}).write_parquet(workdir / "data" / "p1.parquet")
    pl.DataFrame({"url": ["b"], "alt_text": ["y"], "score": [1]}).write_parquet(workdir / "data" / "p2.parquet")
    manifest = run_spec({"source": {"path": "data"}}, workdir, pm=pm)
    assert read_step_output(manifest, "source")["score"].to_list() == [0.5, 1.0]


def test_a_uid_mapped_from_an_integer_column_becomes_text(pm, workdir):
    table = TABLE.with_columns(pl.Series("id", [10, 11, 12, 13]))
    manifest = run_spec({"source": {"path": "d.parquet", "columns": {"uid": "id"}},
                         "steps": [{"step": "sample", "params": {"fraction": 1.0}}]},
                        workdir, tables={"d.parquet": table}, pm=pm)
    out = read_step_output(manifest, "sample")
    assert out.schema["uid"] == pl.Utf8 and out["uid"].to_list() == ["10", "11", "12", "13"]
    assert "id" not in out.columns


def source_bytes(manifest: dict) -> list[bytes]:
    root = Path(manifest["steps"][0]["path"])
    return [p.read_bytes() for p in sorted((root / "data").glob("shard-*.parquet"))]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tables=st.lists(cst.tables(min_rows=0, max_rows=30), min_size=1, max_size=3), shard_size=st.integers(1, 40),
       duplicate=st.booleans())
def test_a_parquet_source_read_in_place_gives_the_staged_copys_shards(pm, tmp_path_factory, monkeypatch, tables,
                                                                     shard_size, duplicate):
    """Parquet is read where it lies (no staged copy): the same uids and bytes as staging gave."""
    import curate.ingest

    workdir = tmp_path_factory.mktemp("inplace")
    tables = [t.drop("uid") for t in tables]
    if duplicate:  # repeated content across files: uids by occurrence, in source order
        tables = [*tables, tables[0]]
    for i, table in enumerate(tables):
        table.write_parquet(workdir / "data" / f"part-{i}.parquet", mkdir=True)
    spec = {"source": {"path": str(workdir / "data")}, "run": {"shard_size": shard_size}}
    in_place = run_spec(spec, workdir / "in_place", pm=pm)
    with monkeypatch.context() as patch:
        patch.setattr(curate.ingest, "in_place_reference", lambda *args: None)
        staged = run_spec(spec, workdir / "staged", pm=pm)
    assert source_bytes(in_place) == source_bytes(staged)
    assert in_place["steps"][0]["rows_out"] == sum(t.height for t in tables)
