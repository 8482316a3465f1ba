"""Parquet strings that are not UTF-8: the run fails naming the file, row and column (not an
internal error), and ``encoding: utf8-lossy`` reads them with bad bytes replaced by U+FFFD."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from curate_basics.parquet_text import BATCH_ROWS, first_bad_string, scan_lossy
from hypothesis import example, given
from hypothesis import strategies as st

from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)

BAD = [b"caf\xe9", b"\xff", b"\xc3(", b"\x80 tail", b"ok \xed\xa0\x80 surrogate"]


def write_raw(path: Path, columns: dict[str, list[bytes | None]], *, row_group_size: int | None = None) -> None:
    """A Parquet file whose string columns hold these bytes as they are, as a writer that skips
    the UTF-8 check would write them."""
    arrays = []
    for values in columns.values():
        raw = pa.array(values, pa.large_binary())
        arrays.append(pa.Array.from_buffers(pa.large_string(), len(raw), raw.buffers(), null_count=raw.null_count))
    pq.write_table(pa.table(arrays, names=list(columns)), path, row_group_size=row_group_size)


def spec(write_spec, **params) -> None:
    source = {"format": "parquet", "path": "data.parquet", **({"params": params} if params else {})}
    write_spec({"name": "utf8", "source": source, "steps": [{"step": "normalize_text"}],
                "outputs": [{"format": "parquet", "path": "out.parquet"}], "run": {"dir": "run", "report": False}})


def test_a_string_that_is_not_utf8_fails_the_run_naming_its_row_and_column(curate_main, write_spec, workdir):
    rows = BATCH_ROWS + 10  # past the first batch the scan reads
    alt = [f"text {i}".encode() for i in range(rows)]
    alt[BATCH_ROWS + 3] = b"caf\xe9 cr\xe8me"
    write_raw(workdir / "data.parquet", {"url": [f"https://a/{i}.jpg".encode() for i in range(rows)], "alt_text": alt})
    spec(write_spec)
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 2, result
    assert f"data.parquet as parquet, row {BATCH_ROWS + 4}, column 'alt_text': b'caf\\xe9 cr\\xe8me' is not UTF-8" \
        in result.stderr
    assert "source.params.encoding: utf8-lossy" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert not (workdir / "out.parquet").exists()


def test_utf8_lossy_reads_every_row_with_bad_bytes_replaced(curate_main, write_spec, workdir):
    write_raw(workdir / "data.parquet", {"url": [b"https://a/1.jpg", b"https://a/2.jpg", b"https://a/3.jpg"],
                                         "alt_text": [b"caf\xe9 latin1", b"plain", None]})
    spec(write_spec, encoding="utf8-lossy")
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 0, result
    out = pl.read_parquet(workdir / "run" / "out.parquet")
    assert out["alt_text"].to_list() == ["caf\ufffd latin1", "plain", None]


def test_a_parquet_source_takes_only_the_utf8_encodings(curate_main, write_spec, workdir):
    write_raw(workdir / "data.parquet", {"url": [b"https://a/1.jpg"], "alt_text": [b"x"]})
    spec(write_spec, encoding="latin1")
    result = curate_main("validate", "spec.yaml")
    assert result.code == 2, result
    assert "encoding" in result.stderr and "utf8-lossy" in result.stderr


def not_utf8(value: bytes | None) -> bool:
    try:
        value is None or value.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


VALUES = st.one_of(st.none(), st.text(max_size=12).map(lambda t: t.encode("utf-8", "surrogatepass")),
                   st.sampled_from(BAD))
COLUMN = st.lists(VALUES, min_size=1, max_size=30)


@given(url=COLUMN, data=st.data())
@example(url=[b"ok", b"\xff"], data=None).via("a bad value in the first column")
def test_first_bad_string_is_the_first_value_a_decoder_refuses(tmp_path_factory, url, data):
    alt = data.draw(st.lists(VALUES, min_size=len(url), max_size=len(url))) if data else [b"x"] * len(url)
    path = tmp_path_factory.mktemp("bad") / "f.parquet"
    write_raw(path, {"url": url, "alt_text": alt}, row_group_size=7)

    expected = next(((row + 1, name) for row in range(len(url)) for name, values in (("url", url), ("alt_text", alt))
                     if not_utf8(values[row])), None)
    found = first_bad_string(path)
    assert ((found.row, found.column) if found else None) == expected


@given(url=COLUMN, data=st.data())
def test_scan_lossy_reads_what_python_decodes_with_replacement(tmp_path_factory, url, data):
    alt = data.draw(st.lists(VALUES, min_size=len(url), max_size=len(url)))
    path = tmp_path_factory.mktemp("lossy") / "f.parquet"
    write_raw(path, {"url": url, "alt_text": alt}, row_group_size=5)
    frame = scan_lossy(path).collect()
    decoded = [[None if v is None else v.decode("utf-8", "replace") for v in values] for values in (url, alt)]
    assert frame.schema == pl.Schema({"url": pl.Utf8, "alt_text": pl.Utf8})
    assert [frame["url"].to_list(), frame["alt_text"].to_list()] == decoded
    # projection, a filter and a row limit are honoured
    assert scan_lossy(path).select("alt_text").head(3).collect()["alt_text"].to_list() == decoded[1][:3]
    assert scan_lossy(path).filter(pl.col("url").is_null()).collect().height == sum(v is None for v in url)


@pytest.mark.parametrize("value", BAD)
def test_every_bad_sample_is_bad(value):
    with pytest.raises(UnicodeDecodeError):
        value.decode("utf-8")


def raw_text(values: list[bytes | None]) -> pa.Array:
    raw = pa.array(values, pa.large_binary())
    return pa.Array.from_buffers(pa.large_string(), len(raw), raw.buffers(), null_count=raw.null_count)


def write_nested(path: Path, lists: list[list[bytes | None] | None], structs: list[bytes | None]) -> None:
    """``tags``: a list of strings per row (None: a null list); ``meta``: a struct {title: string}."""
    offsets, flat = [0], []
    for items in lists:
        flat += items or []
        offsets.append(len(flat))
    tags = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), raw_text(flat),
                                    mask=pa.array([items is None for items in lists]))
    meta = pa.StructArray.from_arrays([raw_text(structs)], names=["title"])
    urls = pa.array([f"https://a/{i}.jpg" for i in range(len(lists))])
    alt = pa.array([f"alt {i}" for i in range(len(lists))])
    pq.write_table(pa.table([urls, alt, tags, meta], names=["url", "alt_text", "tags", "meta"]), path,
                   row_group_size=1000)


LISTS = st.lists(st.one_of(st.none(), st.lists(VALUES, max_size=4)), min_size=1, max_size=25)


@given(lists=LISTS, data=st.data())
def test_strings_inside_lists_and_structs_are_found_by_row_and_mended(tmp_path_factory, lists, data):
    titles = data.draw(st.lists(VALUES, min_size=len(lists), max_size=len(lists)))
    path = tmp_path_factory.mktemp("nested") / "f.parquet"
    write_nested(path, lists, titles)

    expected = next(((row + 1, name) for row in range(len(lists)) for name, is_bad in (
        ("tags", any(not_utf8(v) for v in lists[row] or [])), ("meta", not_utf8(titles[row]))) if is_bad), None)
    found = first_bad_string(path)
    assert ((found.row, found.column) if found else None) == expected
    assert found is None or found.nested and "in a list or struct" in found.render()

    def text(value: bytes | None) -> str | None:
        return None if value is None else value.decode("utf-8", "replace")

    frame = scan_lossy(path).collect()
    assert frame["tags"].to_list() == [None if items is None else [text(v) for v in items] for items in lists]
    assert frame["meta"].struct.field("title").to_list() == [text(v) for v in titles]
    assert frame.schema == pl.Schema({"url": pl.Utf8, "alt_text": pl.Utf8, "tags": pl.List(pl.Utf8),
                                      "meta": pl.Struct({"title": pl.Utf8})})


def test_a_bad_string_in_a_list_past_the_first_batch_is_named_and_utf8_lossy_reads_it(curate_main, write_spec,
                                                                                        workdir):
    lists = [[b"ok"]] * (BATCH_ROWS + 9) + [[b"fine", b"caf\xe9"]]
    write_nested(workdir / "data.parquet", lists, [b"t"] * len(lists))
    spec(write_spec)
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 2, result
    assert f"row {BATCH_ROWS + 10:,}".replace(",", "") in result.stderr.replace(",", "")
    assert "column 'tags': holds a string (in a list or struct) that is not UTF-8" in result.stderr
    spec(write_spec, encoding="utf8-lossy")
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    out = pl.read_parquet(workdir / "run" / "out.parquet")
    assert out.height == len(lists) and out["tags"].to_list()[-1] == ["fine", "caf\ufffd"]


def test_a_bad_string_in_a_column_the_uids_do_not_read_is_named_too(curate_main, write_spec, workdir):
    """The uids' query reads url and alt_text only: a bad value elsewhere surfaces later, as the
    rows stream (inside a list, through DuckDB's Arrow stream as an OSError: the test above)."""
    rows = 70_000
    write_raw(workdir / "data.parquet", {"url": [f"https://a/{i}.jpg".encode() for i in range(rows)],
                                         "alt_text": [b"fine"] * rows,
                                         "title": [b"ok"] * (rows - 1) + [b"\xff title"]})
    spec(write_spec)
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 2, result
    assert "row 70000, column 'title': b'\\xff title' is not UTF-8" in result.stderr
    assert "internal error" not in result.stderr
