"""Rows of a CSV with too few fields are refused naming their line; blank lines are left out."""

from __future__ import annotations

import io

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import curate_basics.sources

from curate.errors import SourceError
from curate.testing import run_spec
from curate.testing.runner import read_step_output
from curate_basics.csvfields import csv_fields

BLANK = None
field_text = st.sampled_from(["", "a", "b c", "x,y", 'say "hi"', "two\nlines", "é"])
rows = st.lists(st.one_of(st.just(BLANK), st.just("\r"), st.lists(field_text, min_size=1, max_size=3)), max_size=12)


def render(value: str, quoted: bool) -> str:
    special = any(c in value for c in ',"\n\r')
    return '"' + value.replace('"', '""') + '"' if quoted or special else value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows, crlf=st.booleans(), quoted=st.booleans(), final_newline=st.booleans())
@example(rows=[["a", "b", "c"], BLANK, ["two\nlines", "x", "y"], BLANK], crlf=False, quoted=False, final_newline=True)
def test_field_counts_and_blank_lines_are_the_readers(tmp_path_factory, rows, crlf, quoted, final_newline):
    end = "\r\n" if crlf else "\n"
    lines = ["url,alt_text,extra"]
    for row in rows:
        # "\r": a CRLF file's blank line in a file of LF endings (CRLF endings bring their own)
        lines.append("" if row is BLANK or row == "\r" and crlf else "\r" if row == "\r"
                     else ",".join(render(v, quoted) for v in row))
    text = end.join(lines) + (end if final_newline else "")
    path = tmp_path_factory.mktemp("csv") / "d.csv"
    path.write_bytes(text.encode())
    counted = csv_fields(path, ",", '"', has_header=True)
    assert counted.expected == 3
    rows = [BLANK if line in ("", "\r") else row for row, line in zip(rows, lines[1:], strict=True)]  # [""] too
    blank = [i for i, row in enumerate(rows) if row is BLANK]
    if not final_newline and rows and lines[-1] == "":
        blank = blank[:-1]  # a last blank line without a newline is no row at all (a "\r" is one)
    short = [i for i, row in enumerate(rows) if row is not BLANK and len(row) < 3]
    if short:
        before = end.join(lines[:short[0] + 1]) + end
        assert counted.short_line == before.count("\n") + 1
        return
    assert counted.short_line is None and counted.blank_rows == blank
    read = pl.read_csv(io.BytesIO(text.encode()), infer_schema=False)
    kept = [r for i, r in enumerate(read.rows()) if i not in blank]
    assert [[v or "" for v in r] for r in kept] == [r for r in rows if r is not BLANK]


def test_an_unquoted_line_break_is_refused_naming_the_line(pm, workdir):
    (workdir / "d.csv").write_text("url,alt_text,license\nhttp://a/1.jpg,a red circle,cc-by\n"
                                   "http://a/2.jpg,a blue square\non a white background,cc0\n")
    with pytest.raises(SourceError) as caught:
        run_spec({"source": {"path": "d.csv", "format": "csv"}}, workdir, pm=pm)
    assert "d.csv as csv, line 3: 2 fields where the header has 3" in str(caught.value)
    assert "quote fields that hold line breaks" in caught.value.hint


@pytest.mark.parametrize("fmt, sep", [("csv", ","), ("tsv", "\t")])
def test_blank_lines_are_left_out_not_read_as_rows_of_nulls(pm, workdir, fmt, sep):
    (workdir / f"d.{fmt}").write_text(f"url{sep}alt_text\n\nhttp://a/1.jpg{sep}one\n\n\nhttp://a/2.jpg{sep}two\n\n")
    manifest = run_spec({"source": {"path": f"d.{fmt}", "format": fmt}}, workdir, pm=pm)
    assert read_step_output(manifest, "source")["alt_text"].to_list() == ["one", "two"]


def test_a_one_column_file_keeps_its_empty_lines_as_empty_values(tmp_path):
    (tmp_path / "d.csv").write_text("url\nhttp://a/1.jpg\n\nhttp://a/2.jpg\n")
    counted = csv_fields(tmp_path / "d.csv", ",", '"', has_header=True)
    assert counted.blank_rows == [] and counted.short_line is None


def test_a_row_with_a_lone_carriage_return_is_named_with_the_fix(pm, workdir):
    """It was 'found more fields than defined in Schema', no line (hostile-tables probe)."""
    (workdir / "d.csv").write_bytes(b"url,alt_text\r\nhttp://a/1.jpg,x\r\nhttp://a/2.jpg,y\rhttp://a/3.jpg,z\n")
    with pytest.raises(SourceError) as caught:
        run_spec({"source": {"path": "d.csv", "format": "csv"}}, workdir, pm=pm)
    assert "line 3: 3 fields where the header has 2 (it holds a carriage return alone" in str(caught.value)
    assert "line endings" in caught.value.hint


def test_a_file_of_old_mac_line_ends_says_so(pm, workdir, write_spec):
    from curate.errors import SpecError
    from curate.plan import make_plan
    from curate.spec import load_spec

    (workdir / "d.csv").write_bytes(b"url,alt_text\rhttp://a/1.jpg,x\rhttp://a/2.jpg,y\r")
    spec_path = write_spec({"source": {"path": "d.csv", "format": "csv"}})
    with pytest.raises(SpecError, match="its lines end with a carriage return alone"):
        make_plan(load_spec(spec_path), pm, spec_path.parent / "run")


def test_lines_of_spaces_are_blank_lines_too(pm, workdir):
    """A file ending in lines of spaces or a tab failed whole ('1 field where the header has 2');
    pandas skips them (re-probe)."""
    (workdir / "d.csv").write_text("url,alt_text\nhttp://a/1.jpg,one\n   \n\t\nhttp://a/2.jpg,two\n  \r\n")
    manifest = run_spec({"source": {"path": "d.csv", "format": "csv"}}, workdir, pm=pm)
    assert read_step_output(manifest, "source")["alt_text"].to_list() == ["one", "two"]


def test_a_file_of_millions_of_blank_lines_is_refused_not_held(pm, workdir, monkeypatch):
    """30M blank lines (30 MB) took 3.7 GB as a list of their positions (security re-probe)."""
    import curate_basics.csvfields

    monkeypatch.setattr(curate_basics.csvfields, "MAX_BLANK_LINES", 100)
    monkeypatch.setattr(curate_basics.sources, "MAX_BLANK_LINES", 100)
    (workdir / "d.csv").write_text("url,alt_text\nhttp://a/1.jpg,x\n" + "\n" * 500)
    with pytest.raises(SourceError, match="holds more than 100 blank lines"):
        run_spec({"source": {"path": "d.csv", "format": "csv"}}, workdir, pm=pm)


def test_a_source_of_too_many_columns_is_refused_at_validate(pm, workdir, write_spec, monkeypatch):
    """A header of 1,000,000 names (8.9 MB) ran over 700 s and 5 GB (security re-probe)."""
    import curate.ingest
    from curate.errors import SpecError
    from curate.plan import make_plan
    from curate.spec import load_spec

    monkeypatch.setattr(curate.ingest, "MAX_COLUMNS", 50)
    (workdir / "d.csv").write_text("url,alt_text," + ",".join(f"c{i}" for i in range(100)) + "\n"
                                   + "http://a/1.jpg,x" + ",0" * 100 + "\n")
    spec_path = write_spec({"source": {"path": "d.csv", "format": "csv"}})
    with pytest.raises(SpecError, match="the source carries 102 columns, more than curate carries \\(50\\)"):
        make_plan(load_spec(spec_path), pm, spec_path.parent / "run")
    manifest = run_spec({"source": {"path": "d.csv", "format": "csv", "keep": ["c1"]}}, workdir, pm=pm)
    assert read_step_output(manifest, "source").columns == ["uid", "url", "alt_text", "c1"]
