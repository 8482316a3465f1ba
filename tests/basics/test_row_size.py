"""Rows too long to read are refused, with their line, before a reader holds one in memory."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import curate_basics.rowsize
from curate.errors import CurateError, SourceError
from curate.testing import run_spec
from curate.testing.runner import read_step_output
from curate_basics.rowsize import first_long_row
from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)


def reference(data: bytes, limit: int, quote: bytes | None) -> tuple[int, int, int] | None:
    """(line, offset, length) of the first row longer than ``limit``: every byte, one at a time."""
    start, quoted = 0, False
    for position, byte in enumerate(data):
        if quote is not None and byte == quote[0]:
            quoted = not quoted
        elif byte == ord("\n") and not quoted:
            if position - start > limit:
                return data[:start].count(b"\n") + 1, start, position - start
            start = position + 1
    if len(data) - start > limit:
        return data[:start].count(b"\n") + 1, start, len(data) - start
    return None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.lists(st.sampled_from([b"a", b"bb", b",", b'"', b"\n", b"\r\n", b"xxxxxxx"]), max_size=120).map(b"".join),
       limit=st.integers(1, 24), quote=st.sampled_from([None, '"']))
@example(data=b"ab\n" + b'"' + b"x\n" * 20 + b'"\nok\n', limit=8, quote='"')  # a quoted field of short lines
@example(data=b"ab\n" + b"x" * 40 + b"\nok", limit=8, quote=None)
def test_the_first_long_row_is_found_as_a_byte_by_byte_reader_finds_it(tmp_path_factory, monkeypatch, data, limit, quote):
    monkeypatch.setattr(curate_basics.rowsize, "_LINES_TRIED", 2)  # the numpy path too
    path = tmp_path_factory.mktemp("rows") / "f.csv"
    path.write_bytes(data)
    found = first_long_row(path, limit, quote)
    expected = reference(data, limit, quote.encode() if quote else None)
    assert (found and (found.line, found.offset)) == (expected and expected[:2])
    if found is not None:
        assert limit < found.length <= expected[2]
        assert found.complete <= (found.length == expected[2])


def huge_csv(path: Path, field: int) -> None:
    with open(path, "w") as f:
        f.write("url,alt_text\n")
        f.writelines(f"https://a/{i}.jpg,cat {i}\n" for i in range(5))
        f.write('https://a/big.jpg,"' + "a" * field + '"\n')
        f.writelines(f"https://a/{i}b.jpg,dog {i}\n" for i in range(5))


def test_a_csv_row_past_the_limit_is_refused_naming_its_line(pm, workdir):
    huge_csv(workdir / "d.csv", 3 * 2**20)
    source = {"path": "d.csv", "format": "csv", "params": {"max_row_bytes": 2**20}}
    with pytest.raises(SourceError) as caught:
        run_spec({"source": source}, workdir, pm=pm)
    message = str(caught.value)
    assert "d.csv as csv, line 7: the row starting there is over " in message
    assert "max_row_bytes (1 MiB)" in message and "remove the row" in caught.value.hint
    source["params"]["max_row_bytes"] = 4 * 2**20
    manifest = run_spec({"source": source}, workdir, pm=pm)
    assert len(read_step_output(manifest, "source")) == 11


def test_a_quote_never_closed_is_refused_once_past_the_limit(pm, workdir):
    body = 'url,alt_text\nhttps://a/1.jpg,"open\n' + "".join(f"https://a/{i}.jpg,x\n" for i in range(2, 5000))
    (workdir / "d.csv").write_text(body)
    with pytest.raises(SourceError) as caught:
        run_spec({"source": {"path": "d.csv", "format": "csv", "params": {"max_row_bytes": 4096}}}, workdir, pm=pm)
    assert "line 2: the row starting there is over" in str(caught.value)
    assert 'or a " opened there is never closed' in str(caught.value)


@pytest.mark.parametrize("name, fmt", [("d.jsonl", "jsonl"), ("d.jsonl", "auto"), ("d.tsv", "tsv"), ("d.csv", "auto")])
def test_jsonl_tsv_and_auto_rows_are_bounded_too(pm, workdir, name, fmt):
    big = "a" * 5000
    rows = [("https://a/1.jpg", "ok"), ("https://a/2.jpg", big), ("https://a/3.jpg", "ok")]
    if name.endswith(".jsonl"):
        text = "".join(f'{{"url": "{u}", "alt_text": "{t}"}}\n' for u, t in rows)
    else:
        sep = "\t" if name.endswith(".tsv") else ","
        text = f"url{sep}alt_text\n" + "".join(f"{u}{sep}{t}\n" for u, t in rows)
    (workdir / name).write_text(text)
    with pytest.raises(CurateError) as caught:  # JSON Lines: at validate, before its types are read from the lines
        run_spec({"source": {"path": name, "format": fmt, "params": {"max_row_bytes": 1000}}}, workdir, pm=pm)
    line = 2 if name.endswith(".jsonl") else 3
    assert f"line {line}: the row starting there is" in str(caught.value)


def test_quoted_fields_of_many_lines_under_the_limit_are_read_as_they_are(pm, workdir):
    texts = ["line one\nline two\n" * 20, 'say ""hi""\n' * 30, "plain"]
    rows = "".join(f'https://a/{i}.jpg,"{t}"\n' for i, t in enumerate(texts))
    (workdir / "d.csv").write_text("url,alt_text\n" + rows * 50)
    manifest = run_spec({"source": {"path": "d.csv", "format": "csv", "params": {"max_row_bytes": 1024}}},
                        workdir, pm=pm)
    read = read_step_output(manifest, "source")["alt_text"].to_list()
    assert read == [t.replace('""', '"') for t in texts] * 50


def test_the_limit_is_no_part_of_the_cache_key(pm, workdir):
    (workdir / "d.csv").write_text("url,alt_text\nhttps://a/1.jpg,cat\n")
    first = run_spec({"source": {"path": "d.csv", "format": "csv"}}, workdir, pm=pm)
    second = run_spec({"source": {"path": "d.csv", "format": "csv", "params": {"max_row_bytes": 10**9}}}, workdir, pm=pm)
    assert first["steps"][0]["fingerprint"] == second["steps"][0]["fingerprint"]


def test_an_untrusted_spec_may_lower_the_limit_never_raise_it(curate_main, workdir):
    (workdir / "d.csv").write_text("url,alt_text\nhttps://a/1.jpg,cat\n")
    said = []
    for limit in (2**30, 2**20):
        (workdir / "spec.yaml").write_text(
            f"source: {{format: csv, path: d.csv, params: {{max_row_bytes: {limit}}}}}\n"
            "steps:\n  - {step: filter, params: {where: 'true'}}\n")
        result = curate_main("validate", "spec.yaml", "--untrusted")
        said.append((result.code, "may not raise source.params.max_row_bytes" in result.stderr))
    assert said == [(2, True), (0, False)]


def test_a_header_whose_quote_never_closes_is_refused_not_an_internal_error(pm, workdir, write_spec):
    from curate.errors import SpecError
    from curate.plan import make_plan
    from curate.spec import load_spec

    (workdir / "d.csv").write_text('"url,alt_text\n' + "https://a/1.jpg,x\n" * 20_000)
    spec_path = write_spec({"source": {"path": "d.csv", "format": "csv"}})
    with pytest.raises(SpecError, match=r"d.csv as csv, line 1: a field of the header runs past 131,072 characters"):
        make_plan(load_spec(spec_path), pm, spec_path.parent / "run")
