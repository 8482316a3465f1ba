"""Source files that used to be read wrong without a word: other encodings, files of one source
that disagree, special files, clashing or empty column names, all-null columns."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import curate_basics.decode
import curate_basics.sources
from curate.errors import CurateError, SourceError, SpecError
from curate.plan import make_plan
from curate.spec import load_spec
from curate.testing import run_spec
from curate.testing.runner import read_step_output


def plan_problems(spec_path: Path, pm) -> str:
    with pytest.raises(SpecError) as caught:
        make_plan(load_spec(spec_path), pm, spec_path.parent / "run")
    return str(caught.value)


def texts(manifest: dict) -> list[str]:
    return read_step_output(manifest, "source")["alt_text"].to_list()


# -- 1. encodings -------------------------------------------------------------------------------
CP1252 = b"url,alt_text\nhttps://a/1.jpg,caf\xe9 \xff\xfe\nhttps://a/2.jpg,\x93quoted\x94 costs \x80 5\n"


@pytest.mark.parametrize("encoding, expected", [
    ("latin1", ["café ÿþ", "\x93quoted\x94 costs \x80 5"]),
    ("cp1252", ["café ÿþ", "“quoted” costs € 5"]),
    ("windows-1252", ["café ÿþ", "“quoted” costs € 5"]),
])
def test_a_named_encoding_is_really_decoded(pm, workdir, encoding, expected):
    (workdir / "d.csv").write_bytes(CP1252)
    manifest = run_spec({"source": {"path": "d.csv", "format": "csv", "params": {"encoding": encoding}}}, workdir, pm=pm)
    assert texts(manifest) == expected
    assert not list((workdir / "run" / "tmp").rglob("*.csv"))  # the decoded copy is gone


def test_a_multibyte_encoding_across_chunks(pm, workdir, monkeypatch):
    monkeypatch.setattr(curate_basics.decode, "CHUNK", 7)  # characters and lines split across reads
    rows = [f"https://a/{i}.jpg,東京 {i} café" for i in range(20)]
    (workdir / "d.tsv").write_bytes("\n".join(["url\talt_text", *(r.replace(",", "\t") for r in rows)]).encode("utf-16"))
    manifest = run_spec({"source": {"path": "d.tsv", "format": "tsv", "params": {"encoding": "utf-16"}}}, workdir, pm=pm)
    assert texts(manifest) == [f"東京 {i} café" for i in range(20)]


def test_a_byte_the_encoding_does_not_define_names_line_and_column(pm, workdir):
    (workdir / "d.csv").write_bytes(b"url,alt_text\nhttps://a/1.jpg,ok\nhttps://a/2.jpg,bad \x81 here\n")
    with pytest.raises(SourceError) as caught:
        run_spec({"source": {"path": "d.csv", "format": "csv", "params": {"encoding": "cp1252"}}}, workdir, pm=pm)
    message = str(caught.value)
    assert "d.csv as cp1252, line 3, column 21: byte 0x81 (offset 52)" in message
    assert "latin1 decodes every byte" in message


@pytest.mark.parametrize("encoding, message", [
    ("klingon", "unknown encoding 'klingon'"),
    ("base64", "'base64' is not a text encoding"),
])
def test_an_encoding_python_cannot_decode_text_with_is_a_spec_problem(pm, workdir, write_spec, encoding, message):
    (workdir / "d.csv").write_bytes(CP1252)
    spec = write_spec({"source": {"path": "d.csv", "format": "csv", "params": {"encoding": encoding}}})
    problems = plan_problems(spec, pm)
    assert f"source.params.encoding: {message}" in problems and "cp1252" in problems


def test_the_utf8_hint_names_a_real_encoding(pm, workdir):
    (workdir / "d.csv").write_bytes(CP1252)
    with pytest.raises(SourceError) as caught:
        run_spec({"source": {"path": "d.csv"}}, workdir, pm=pm)
    assert "source.format: csv and source.params.encoding: cp1252" in str(caught.value)
    assert "latin1" in str(caught.value)


def test_utf8_lossy_is_asked_for_by_name(pm, workdir):
    (workdir / "d.csv").write_bytes(CP1252)
    manifest = run_spec({"source": {"path": "d.csv", "format": "csv", "params": {"encoding": "utf8-lossy"}}},
                        workdir, pm=pm)
    assert texts(manifest)[0] == "caf\ufffd \ufffd\ufffd"


# -- 2. files of one source that disagree -------------------------------------------------------
STRINGS = pl.DataFrame({"url": ["https://a/1.jpg"], "alt_text": ["one"]})
INTEGERS = pl.DataFrame({"url": [2], "alt_text": ["two"], "extra": ["kept?"]})


@pytest.mark.parametrize("first, second", [(STRINGS, INTEGERS), (INTEGERS, STRINGS)])
def test_files_with_other_columns_or_types_are_refused_at_validation(pm, workdir, write_spec, first, second):
    (workdir / "data").mkdir()
    first.write_parquet(workdir / "data" / "a.parquet")
    second.write_parquet(workdir / "data" / "b.parquet")
    problems = plan_problems(write_spec({"source": {"path": "data"}}), pm)
    a, b = workdir / "data" / "a.parquet", workdir / "data" / "b.parquet"
    assert "'extra'" in problems and f"column 'url' is {first.schema['url']} in {a} but {second.schema['url']} in {b}" \
        in problems


def test_csv_files_with_other_headers_are_refused(pm, workdir, write_spec):
    (workdir / "data").mkdir()
    (workdir / "data" / "a.csv").write_text("url,alt_text\nu1,t1\n")
    (workdir / "data" / "b.csv").write_text("url,caption\nu2,t2\n")
    problems = plan_problems(write_spec({"source": {"path": "data"}}), pm)
    assert f"{workdir / 'data' / 'b.csv'} has no column 'alt_text'" in problems


def test_a_file_changed_after_validation_is_named_by_its_path(pm, workdir, write_spec):
    from curate.engine import Engine

    (workdir / "data").mkdir()
    STRINGS.write_parquet(workdir / "data" / "a.parquet")
    STRINGS.write_parquet(workdir / "data" / "b.parquet")
    plan = make_plan(load_spec(write_spec({"source": {"path": "data"}})), pm, workdir / "run")
    STRINGS.rename({"alt_text": "caption"}).write_parquet(workdir / "data" / "b.parquet")
    with pytest.raises(SourceError, match=f"{workdir / 'data' / 'b.parquet'} has no column 'alt_text'"):
        Engine(plan, pm).run()


def jsonl(path: Path, rows: list[dict]) -> None:
    import json

    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_a_jsonl_key_that_first_appears_late_is_read(pm, workdir):
    rows = [{"url": f"u{i}", "alt_text": f"t{i}"} for i in range(300)] + [{"url": "u", "alt_text": "t", "extra": 7}]
    jsonl(workdir / "d.jsonl", rows)
    manifest = run_spec({"source": {"path": "d.jsonl"}}, workdir, pm=pm)
    assert read_step_output(manifest, "source")["extra"].to_list() == [None] * 300 + [7]


@pytest.mark.parametrize("value, shown", [(12345, "a number (12345)"), (["a", "b"], 'a list (["a", "b"])')])
def test_a_jsonl_value_of_another_type_is_refused(pm, workdir, write_spec, value, shown):
    rows = [{"url": f"u{i}", "alt_text": f"t{i}"} for i in range(300)] + [{"url": "u", "alt_text": value}]
    jsonl(workdir / "d.jsonl", rows)
    problems = plan_problems(write_spec({"source": {"path": "d.jsonl"}}), pm)
    assert f"d.jsonl as jsonl, line 301: 'alt_text' is {shown} where line 1 has text" in problems
    assert "one JSON type on every line" in problems


def test_jsonl_numbers_of_both_kinds_and_nulls_are_one_type(pm, workdir):
    jsonl(workdir / "d.jsonl", [{"url": "u1", "alt_text": "t", "w": 1}, {"url": "u2", "alt_text": None, "w": 2.5}])
    manifest = run_spec({"source": {"path": "d.jsonl"}}, workdir, pm=pm)
    assert read_step_output(manifest, "source")["w"].to_list() == [1.0, 2.5]


# -- 2b. JSON Lines past the scan the schema is read from --------------------------------------
PAD = "x" * 200_000  # 200 lines of it pass JSONL_SCAN_LIMIT (32 MiB), with 160 lines in the scan


def big_jsonl(path: Path, late: dict, early: dict | None = None) -> None:
    """Over 32 MiB of rows that agree (written in a blink: few long lines), then one that may not."""
    rows = [{"url": f"u{i}", "alt_text": f"t{i}", "n": 1, "pad": PAD, **(early or {})} for i in range(200)]
    jsonl(path, [*rows, {"url": "late", "alt_text": "t", "n": 1, "pad": "p", **late}])


@pytest.mark.parametrize("late, said", [
    ({"extra": 7}, "key 'extra' (7) is on no line of the first 32 MiB, from which the file's columns were read"),
    ({"alt_text": 12345}, "'alt_text' is a number (12345) where the first 32 MiB have text"),
    ({"alt_text": ["a", "b"]}, """'alt_text' is a list (["a", "b"]) where the first 32 MiB have text"""),
    ({"n": 1.5}, "'n' is 1.5, not a whole number within Int64, where the first 32 MiB have only such numbers"),
    ({"n": "one"}, """'n' is text ("one") where the first 32 MiB have a number"""),
])
def test_a_jsonl_row_past_the_scan_that_disagrees_is_refused_before_any_shard(pm, workdir, late, said):
    """Read with the schema of the first 32 MiB, the key was dropped and the number or list turned
    into text without a word; a fraction or text for a whole number failed mid-read, naming no line."""
    big_jsonl(workdir / "d.jsonl", late)
    assert (workdir / "d.jsonl").stat().st_size > 32 * 2**20
    with pytest.raises(SourceError) as caught:
        run_spec({"source": {"path": "d.jsonl"}}, workdir, pm=pm)
    message = str(caught.value)
    assert f"cannot read {workdir / 'd.jsonl'} as jsonl, line 201: {said}" in message
    assert "read from its first 32 MiB" in message and "convert the file to Parquet" in message
    assert not list((workdir / "run").rglob("shard-*.parquet"))


def test_a_large_jsonl_whose_rows_agree_is_read_whole(pm, workdir):
    """Keys past the scan that it has (or only nulls for keys it has not) lose nothing."""
    big_jsonl(workdir / "d.jsonl", {"alt_text": "late text", "n": 2, "extra": None}, early={"w": None})
    manifest = run_spec({"source": {"path": "d.jsonl"}}, workdir, pm=pm)
    out = read_step_output(manifest, "source")
    assert out.height == 201 and out["alt_text"][-1] == "late text" and out["n"][-1] == 2
    assert "extra" not in out.columns


def test_a_jsonl_key_null_throughout_the_scan_with_a_value_past_it_is_refused(pm, workdir, monkeypatch):
    monkeypatch.setattr(curate_basics.sources, "JSONL_SCAN_LIMIT", 20_000)
    rows = [{"url": f"u{i}", "alt_text": f"t{i}", "w": None} for i in range(1000)]
    jsonl(workdir / "d.jsonl", [*rows, {"url": "u", "alt_text": "t", "w": 3}])
    with pytest.raises(SourceError, match="line 1001: 'w' is a number \\(3\\) but null on every line of the "
                                          "first 20000 bytes, from which its type was read"):
        run_spec({"source": {"path": "d.jsonl"}}, workdir, pm=pm)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(-2, 2, allow_nan=False),
                         st.text("ab", max_size=3))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.dictionaries(st.sampled_from(["a", "b", "c"]), json_scalars, max_size=3), min_size=1,
                     max_size=40),
       limit=st.integers(1, 8000))
def test_a_jsonl_file_is_read_as_a_whole_scan_reads_it_or_refused(tmp_path_factory, monkeypatch, rows, limit):
    """Whatever the scan covers: the rows a scan of the whole file gives (less columns with no
    value), or a SourceError; never other values, never a dropped one. (The schema is read from
    100 lines at least: the generated rows follow 100 that have none of their keys.)"""
    from curate.source import SourceContext
    from curate_basics.sources import JsonlSource

    path = tmp_path_factory.mktemp("jsonl") / "d.jsonl"
    filler = [{"url": f"f{i}", "alt_text": "t"} for i in range(100)]
    jsonl(path, [*filler, *({"url": f"u{i}", "alt_text": "t", **row} for i, row in enumerate(rows))])

    def read(scan_limit: int) -> pl.DataFrame:
        monkeypatch.setattr(curate_basics.sources, "JSONL_SCAN_LIMIT", scan_limit)
        source = JsonlSource(JsonlSource.Params(), SourceContext(path.parent, path.parent, 0, str(path)))
        source.schema()
        return pl.concat([frame.collect() for frame in source.scan()])

    try:
        whole = read(1 << 30)
    except SourceError:  # a key of two JSON types: refused whatever the scan
        return
    try:
        scanned = read(limit)
    except SourceError:
        return
    assert scanned.equals(whole.select(scanned.columns))
    assert all(whole[c].null_count() == whole.height for c in whole.columns if c not in scanned.columns)


def test_a_jsonl_whole_number_a_float_cannot_hold_among_fractions_is_refused(pm, workdir):
    """Read as floats, 9007199254740993 became 9007199254740992.0 without a word (an id past 2^53
    in a key that also holds a fraction)."""
    jsonl(workdir / "d.jsonl", [{"url": "u1", "alt_text": "a", "n": 9007199254740993},
                                {"url": "u2", "alt_text": "b", "n": 1.5}])
    with pytest.raises(CurateError, match="line 2: 'n' is 9007199254740993 on line 1, a whole number a float cannot "
                                          "hold exactly, and 1.5 on line 2: the reader would read them as floats"):
        run_spec({"source": {"path": "d.jsonl"}}, workdir, pm=pm)
    jsonl(workdir / "d.jsonl", [{"url": "u1", "alt_text": "a", "n": 2**60}, {"url": "u2", "alt_text": "b", "n": 1.5},
                                {"url": "u3", "alt_text": "c", "n": 9007199254740993.0}])  # exact, or a float as written
    out = read_step_output(run_spec({"source": {"path": str(workdir / "d.jsonl")}}, workdir / "exact", pm=pm),
                           "source")
    assert out["n"].to_list() == [2.0**60, 1.5, 9007199254740992.0]


def test_a_jsonl_whole_number_a_float_cannot_hold_past_the_scan_is_refused(pm, workdir):
    big_jsonl(workdir / "d.jsonl", {"n": 9007199254740993}, early={"n": 0.5})
    with pytest.raises(SourceError, match="line 201: 'n' is 9007199254740993, a whole number a float cannot hold "
                                          "exactly, where the first 32 MiB have fractions: the reader would round it"):
        run_spec({"source": {"path": "d.jsonl"}}, workdir, pm=pm)


json_numbers = st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(-1e20, 1e20, allow_nan=False),
                         st.integers(2**53 - 3, 2**53 + 3))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(numbers=[9007199254740993, 0.0], limit=54)  # the fraction past the scan, inferred from both lines
@given(numbers=st.lists(json_numbers, min_size=1, max_size=12), limit=st.integers(1, 400))
def test_jsonl_numbers_are_read_as_written_or_refused(tmp_path_factory, monkeypatch, numbers, limit):
    """Each number reads back equal to what the file says (an int as that int, a float as that
    float), or the source is refused; never a rounded one."""
    from curate.source import SourceContext
    from curate_basics.sources import JsonlSource

    path = tmp_path_factory.mktemp("numbers") / "d.jsonl"
    jsonl(path, [{"url": f"u{i}", "alt_text": "t", "n": n} for i, n in enumerate(numbers)])
    monkeypatch.setattr(curate_basics.sources, "JSONL_SCAN_LIMIT", limit)
    source = JsonlSource(JsonlSource.Params(), SourceContext(path.parent, path.parent, 0, str(path)))
    try:
        source.schema()
        read = pl.concat([frame.collect() for frame in source.scan()])["n"].to_list()
    except SourceError:
        return
    assert all(type(r) is type(n) or isinstance(r, float) for r, n in zip(read, numbers, strict=True))
    assert read == numbers


# -- 3. special files ---------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["path", "glob", "directory"])
def test_a_fifo_is_refused_not_waited_on(pm, workdir, write_spec, layout):
    import os

    (workdir / "data").mkdir()
    STRINGS.write_parquet(workdir / "data" / "a.parquet")
    os.mkfifo(workdir / "data" / "b.parquet")
    path = {"path": "data/b.parquet", "glob": "data/*.parquet", "directory": "data"}[layout]
    problems = plan_problems(write_spec({"source": {"path": path}}), pm)
    assert f"{workdir / 'data' / 'b.parquet'} is a pipe (FIFO), not a regular file" in problems


def test_dev_null_is_refused(pm, workdir, write_spec):
    problems = plan_problems(write_spec({"source": {"path": "/dev/null", "format": "csv"}}), pm)
    assert "/dev/null is a character device, not a regular file" in problems


# -- 4. names that differ only by case ----------------------------------------------------------
CASES = pl.DataFrame({"url": ["a", "b"], "URL": ["A", "B"], "alt_text": ["x", "y"]})


def test_source_columns_that_differ_only_by_case_are_refused(pm, write_spec):
    problems = plan_problems(write_spec({"source": {"path": "data.parquet"}}, table=CASES), pm)
    assert "columns 'url' and 'URL' differ only by case; DuckDB treats them as one" in problems
    assert "source.columns ({url_2: URL})" in problems


def test_the_clash_is_fine_once_renamed_or_left_out(pm, workdir):
    renamed = run_spec({"source": {"path": "d.parquet", "columns": {"url_2": "URL"}}}, workdir / "renamed",
                       tables={"d.parquet": CASES}, pm=pm)
    assert read_step_output(renamed, "source").columns == ["uid", "url", "alt_text", "url_2"]
    left_out = run_spec({"source": {"path": "d.parquet", "keep": []}}, workdir / "left_out",
                        tables={"d.parquet": CASES}, pm=pm)
    assert read_step_output(left_out, "source")["url"].to_list() == ["a", "b"]


def test_a_step_whose_output_clashes_by_case_is_refused(pm, write_spec):
    spec = write_spec({"source": {"path": "data.parquet"}, "steps": [{"step": "rename",
                                                                      "params": {"mapping": {"alt_text": "URL"}}}]},
                      table=CASES.drop("URL"))
    assert "columns 'url' and 'URL', which differ only by case" in plan_problems(spec, pm)


# -- 5. all-null columns ------------------------------------------------------------------------
def test_all_null_url_and_alt_text_are_read_as_text(pm, workdir):
    table = pl.DataFrame({"url": [None] * 50, "alt_text": [None] * 50, "note": [None] * 50})
    assert table.schema["url"] == pl.Null
    manifest = run_spec({"source": {"path": "d.parquet"},
                         "steps": [{"step": "normalize_text", "params": {"columns": ["alt_text", "note"]}}]},
                        workdir, tables={"d.parquet": table}, pm=pm)
    out = read_step_output(manifest, "normalize_text")
    assert out.height == 50 and out.schema["url"] == pl.Utf8 and out.schema["alt_text"] == pl.Utf8
    assert out["alt_text"].null_count() == 50


def test_an_all_null_file_combines_with_typed_ones(pm, workdir):
    (workdir / "data").mkdir()
    pl.DataFrame({"url": [None, None], "alt_text": [None, None]}).write_parquet(workdir / "data" / "a.parquet")
    STRINGS.write_parquet(workdir / "data" / "b.parquet")
    manifest = run_spec({"source": {"path": "data"}}, workdir, pm=pm)
    assert read_step_output(manifest, "source")["alt_text"].to_list() == [None, None, "one"]


# -- 6. CSV headers with empty or repeated names ------------------------------------------------
@pytest.mark.parametrize("header, problem", [
    ("url,alt_text,,", "the header 'url,alt_text,,' has no name at positions 3, 4"),
    ("url,url,alt_text", "the header 'url,url,alt_text' has 'url' at positions 1, 2"),
    ('"url",alt_text,"url"', "'url' at positions 1, 3"),
])
def test_a_header_with_empty_or_repeated_names_is_refused(pm, workdir, write_spec, header, problem):
    fields = header.count(",") + 1
    (workdir / "d.csv").write_text(f"{header}\n" + ",".join(["x"] * fields) + "\n")
    problems = plan_problems(write_spec({"source": {"path": "d.csv"}}), pm)
    assert "d.csv as csv, line 1: the header" in problems and problem in problems
    assert "reserved" not in problems


def test_a_tsv_header_in_another_encoding_is_checked_too(pm, workdir, write_spec):
    (workdir / "d.tsv").write_bytes("url\talt_text\tcafé\tcafé\nu\tt\ta\tb\n".encode("cp1252"))
    spec = write_spec({"source": {"path": "d.tsv", "format": "tsv", "params": {"encoding": "cp1252"}}})
    assert "'café' at positions 3, 4" in plan_problems(spec, pm)


# -- 7. uid changed by a step's params or a user's query ----------------------------------------
def test_normalize_text_refuses_uid_at_validation(pm, write_spec):
    spec = write_spec({"source": {"path": "data.parquet"},
                       "steps": [{"step": "normalize_text", "params": {"columns": ["alt_text", "uid"]}}]},
                      table=STRINGS)
    assert "steps[0].params: 'uid' cannot be normalized" in plan_problems(spec, pm)


@pytest.mark.parametrize("per_shard, query, said", [
    *[(per_shard, "SELECT upper(uid) AS uid, url, alt_text FROM input", "whose uid is not an input row's")
      for per_shard in (False, True)],
    *[(per_shard, "SELECT NULL::VARCHAR AS uid, url, alt_text FROM input", "whose uid is not an input row's")
      for per_shard in (False, True)],
    # (per shard, a set operation is refused at validation: test_sql.py::test_per_shard_refuses_…)
    (False, "SELECT * FROM input UNION ALL SELECT * FROM input", "more than once: it duplicated rows"),
])
def test_an_sql_query_that_changes_uids_is_named_not_the_plugin(pm, workdir, per_shard, query, said):
    from curate.errors import StepError

    table = pl.DataFrame({"url": ["a", "b", "c"], "alt_text": ["x", "y", "z"]})
    with pytest.raises(StepError) as caught:
        run_spec({"source": {"path": "d.parquet"},
                  "steps": [{"step": "sql", "params": {"query": query, "per_shard": per_shard}}]},
                 workdir, tables={"d.parquet": table}, pm=pm)
    message = str(caught.value)
    assert "step 'sql'" in message and said in message and "select uid from input unchanged" in message
    assert "plugin" not in message


# -- column types no step can carry (found by the column-types probe: internal errors, a panic) ---
def _arrow_file(path: Path, column: str, array) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"url": ["http://a"] * len(array), "alt_text": ["x"] * len(array), column: array}), path)


def test_types_no_step_carries_are_refused_at_validation_naming_the_column(pm, workdir, write_spec):
    import decimal

    import pyarrow as pa

    cases = {
        "int128.parquet": ("big", pl.DataFrame({"url": ["a"], "alt_text": ["x"],
                                                "big": pl.Series([2**100], dtype=pl.Int128)}), "holds Int128 numbers"),
        "decimal.parquet": ("d", pa.array([decimal.Decimal("1.5")], pa.decimal256(50, 5)), "is a decimal of 50 digits"),
    }
    for name, (column, data, said) in cases.items():
        if isinstance(data, pl.DataFrame):
            data.write_parquet(workdir / name)
        else:
            _arrow_file(workdir / name, column, data)
        spec = write_spec({"source": {"path": name}}, name=f"{name}.yaml")
        problems = plan_problems(spec, pm)
        assert f"column '{column}' {said}" in problems and "source.keep" in problems, problems
        kept = write_spec({"source": {"path": name, "keep": []}}, name=f"{name}-keep.yaml")
        make_plan(load_spec(kept), pm, workdir / "run")  # left out, the rest runs


def test_jsonl_numbers_past_64_bits_are_refused_with_how_to_quote_them(pm, workdir, write_spec):
    (workdir / "d.jsonl").write_text('{"url": "a", "alt_text": "x", "n": 18446744073709551615}\n')
    problems = plan_problems(write_spec({"source": {"path": "d.jsonl"}}), pm)
    assert "column 'n' holds Int128 numbers" in problems and "quote them" in problems


def test_a_time_zone_polars_does_not_know_is_named_not_a_panic(pm, workdir, write_spec):
    import pyarrow as pa

    _arrow_file(workdir / "tz.parquet", "ts", pa.array([0], pa.timestamp("us", tz="+05:45")))
    problems = plan_problems(write_spec({"source": {"path": "tz.parquet"}}), pm)
    assert "column 'ts' of" in problems and "has the time zone '+05:45', which Polars does not know" in problems


def test_a_parquet_source_whose_shards_would_not_fit_in_memory_is_refused_at_validate(pm, workdir, monkeypatch):
    """A 20 kB Parquet file held 3,000 rows of 1 MiB of text: shards of its rows filled memory and
    ended in an internal "Out of Memory" error (security probe). Its footer says how large its
    rows are (unless one value repeats: a dictionary page holds it once), so validation says
    which shard size fits."""
    import curate.ingest

    monkeypatch.setattr(curate.ingest, "_memory_bytes", lambda: 20 * 10**6)  # a 5 MB share per shard
    pl.DataFrame({"url": [f"u{i}" for i in range(100)], "alt_text": [f"{i:05d}" + "x" * 100_000 for i in range(100)]}).write_parquet(
        workdir / "wide.parquet", compression="zstd")
    assert (workdir / "wide.parquet").stat().st_size < 100_000
    spec = {"source": {"path": "wide.parquet"}, "run": {"shard_size": 1000}}
    with pytest.raises(SpecError, match=r"run.shard_size: rows of .*wide.parquet take 100,0\d\d bytes each unpacked "
                                        r"\(its footer says\), so a shard of 100 of them would hold 10.0 MB") as caught:
        run_spec(spec, workdir, pm=pm)
    assert "set run.shard_size to 49 or less" in str(caught.value)
    manifest = run_spec({**spec, "run": {"shard_size": 40}}, workdir, pm=pm)
    assert read_step_output(manifest, "source").height == 100


def test_a_source_of_thousands_of_columns_is_carried_whole(pm, workdir):
    """A 10-row file of 3,000 columns ran 50 s (each step's output check asked Polars for the frame's
    schema once per column, building it anew each time: O(columns²)); now ~3 s."""
    columns = {"url": ["https://a/1.jpg"] * 10, "alt_text": ["x"] * 10, **{f"c{i}": [i] * 10 for i in range(2000)}}
    pl.DataFrame(columns).write_parquet(workdir / "wide.parquet")
    manifest = run_spec({"source": {"path": "wide.parquet"},
                         "steps": [{"step": "filter", "params": {"where": "c1999 = 1999"}}]}, workdir, pm=pm)
    out = read_step_output(manifest, "filter")
    assert out.height == 10 and out.columns[-2000:] == [f"c{i}" for i in range(2000)]


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_column_name_with_a_nul_is_refused_at_validate_unless_left_out(pm, workdir, write_spec, kind):
    """It was a Rust panic blamed on the first `where`, or 'a bug in plugin basics' (hostile-tables probe)."""
    table = pl.DataFrame({"url": ["https://a/1.jpg"], "alt_text": ["x"], "no\x00te": ["y"]})
    if kind == "csv":
        (workdir / "d.csv").write_bytes(b"url,alt_text,no\x00te\nhttps://a/1.jpg,x,y\n")
    else:
        table.write_parquet(workdir / "d.parquet")
    source = {"path": f"d.{kind}", "format": kind}
    steps = [{"step": "filter", "params": {"where": "true"}}]
    problems = plan_problems(write_spec({"source": source, "steps": steps}), pm)
    assert "column 'no\\x00te' has a NUL character in its name" in problems and "Panic" not in problems
    manifest = run_spec({"source": {**source, "keep": []}, "steps": steps}, workdir, pm=pm)
    assert read_step_output(manifest, "filter").columns == ["uid", "url", "alt_text"]


def test_a_utf16_csv_read_as_utf8_names_its_encoding(pm, workdir, write_spec):
    (workdir / "d.csv").write_bytes("url,alt_text\nhttps://a/1.jpg,x\n".encode("utf-16"))
    problems = plan_problems(write_spec({"source": {"path": "d.csv", "format": "csv"}}), pm)
    assert "starts with a UTF-16 byte order mark" in problems and "source.params.encoding: utf-16" in problems


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(whole=st.lists(st.one_of(st.integers(-2**63, 2**63 - 1), st.integers(-2**53, 2**53)), min_size=1, max_size=5),
       width=st.sampled_from([pl.Int32, pl.Int64]), kind=st.sampled_from(["parquet", "jsonl"]))
@example(whole=[9007199254740993], width=pl.Int64, kind="parquet")
def test_whole_numbers_among_fractions_of_another_file_read_exactly_or_are_refused(tmp_path_factory, whole, width,
                                                                                   kind):
    """9007199254740993 in one file and 0.5 in another read as 9007199254740992.0 without a word
    (hostile-tables probe): read as floats, each whole number is exact or the run is refused."""
    from tests.conftest import builtin_plugins

    workdir = tmp_path_factory.mktemp("work")
    if width == pl.Int32:
        whole = [max(-2**31, min(2**31 - 1, n)) for n in whole]
    rows = [pl.DataFrame({"url": [f"https://a/{i}.jpg" for i in range(len(whole))], "alt_text": ["x"] * len(whole),
                          "n": pl.Series(whole, dtype=width)}),
            pl.DataFrame({"url": ["https://b/1.jpg"], "alt_text": ["y"], "n": [0.5]})]
    (workdir / "d").mkdir()
    for i, frame in enumerate(rows):
        frame.write_parquet(workdir / "d" / f"{i}.parquet") if kind == "parquet" \
            else frame.write_ndjson(workdir / "d" / f"{i}.jsonl")
    try:
        manifest = run_spec({"source": {"path": "d", "format": kind}}, workdir, pm=builtin_plugins("basics"))
    except SourceError as exc:
        assert "cannot hold exactly" in str(exc) and any(float(n) != n for n in whole)
        return
    read = read_step_output(manifest, "source")["n"].to_list()
    assert read[:len(whole)] == whole and read[-1] == 0.5  # floats equal to each whole number


def test_int64_and_uint64_files_are_refused_naming_both(pm, workdir, write_spec):
    (workdir / "d").mkdir()
    pl.DataFrame({"url": ["u"], "alt_text": ["x"], "id": pl.Series([2**63], dtype=pl.UInt64)}).write_parquet(
        workdir / "d" / "a.parquet")
    pl.DataFrame({"url": ["v"], "alt_text": ["y"], "id": [-1]}).write_parquet(workdir / "d" / "b.parquet")
    problems = plan_problems(write_spec({"source": {"path": "d"}}), pm)
    assert "column 'id' is UInt64 in" in problems and "but Int64 in" in problems and "Int128" not in problems
