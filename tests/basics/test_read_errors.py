"""Broken source files: the error names file, line and column, exit 2, no traceback."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from curate_basics.locate import first_bad_json_line, first_bad_utf8, first_ragged_row
from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)

ROWS = [f"https://example.com/{i}.jpg,caption {i}\n" for i in range(30)]


def _write(workdir, name: str, data: bytes) -> None:
    (workdir / name).write_bytes(data)


def _spec(write_spec, path: str) -> None:
    write_spec({"name": "broken", "source": {"path": path},
                "steps": [{"step": "filter", "params": {"where": "length(alt_text) > 1"}}], "run": {"dir": "run"}})


@pytest.mark.parametrize(("name", "data", "expected"), [
    ("bad.csv", b"url,alt_text\n" + "".join(ROWS[:20]).encode() + b"https://example.com/x.jpg,caf\xe9\n"
     + "".join(ROWS[20:]).encode(), "bad.csv as csv, line 22, column 30: byte 0xe9"),
    ("ragged.csv", ("url,alt_text\n" + "".join(ROWS[:10]) + "https://example.com/r.jpg,one,two\n"
                    + "".join(ROWS[10:])).encode(), "ragged.csv as csv, line 12: 3 fields where the header has 2"),
    ("broken.jsonl", "".join(json.dumps({"url": f"u{i}", "alt_text": f"t{i}"}) + "\n" for i in range(13)).encode()
     + b'{"url": "u13", "alt_text": \n' + b'{"url": "u14", "alt_text": "t"}\n',
     "broken.jsonl as jsonl, line 14, column 28: not valid JSON"),
    ("bad.jsonl", b'{"url": "u0", "alt_text": "t"}\n{"url": "u1", "alt_text": "\xff"}\n',
     "bad.jsonl as jsonl, line 2, column 28: byte 0xff"),
    ("deep.jsonl", b'{"url": "u0", "alt_text": "t"}\n{"url": "u1", "alt_text": "t", "d": ' + b"[" * 100_000
     + b"]" * 100_000 + b"}\n", "deep.jsonl as jsonl, line 2: lists or objects nested too deep to read"),
])
def test_broken_source_files_say_where(curate_main, write_spec, workdir, name, data, expected):
    _write(workdir, name, data)
    _spec(write_spec, name)
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 2, result
    assert expected in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


LINES = st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=20),
                 min_size=1, max_size=40)


@given(lines=LINES, where=st.data(), bad=st.sampled_from([b"\xff", b"\xc3(", b"\xe9", b"\x80"]))
def test_first_bad_utf8_finds_the_line_and_byte(tmp_path_factory, lines, where, bad):
    index = where.draw(st.integers(0, len(lines) - 1))
    encoded = [line.encode() for line in lines]
    column = where.draw(st.integers(0, len(encoded[index])))
    # Insert only between characters, so the bad byte is the first invalid one.
    while column and not encoded[index][:column].decode("utf-8", "ignore").encode() == encoded[index][:column]:
        column -= 1
    encoded[index] = encoded[index][:column] + bad + encoded[index][column:]
    path = tmp_path_factory.mktemp("utf8") / "f.txt"
    path.write_bytes(b"\n".join(encoded) + b"\n")
    found = first_bad_utf8(path)
    assert found is not None
    assert (found.line, found.column) == (index + 1, column + 1)


def test_first_bad_utf8_across_chunk_boundaries(tmp_path):
    path = tmp_path / "f.txt"
    body = ("é" * ((1 << 20) // 2 + 7) + "\n").encode()  # a 2-byte character spans the 1 MiB read
    path.write_bytes(body * 3 + b"x\xffy\n")
    found = first_bad_utf8(path)
    assert found is not None and (found.line, found.column) == (4, 2)
    path.write_bytes(body * 3)
    assert first_bad_utf8(path) is None


def test_the_scans_are_bounded(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"a": 1}\n' * 1000 + b"\xff{\n")
    assert first_bad_utf8(path, limit=1 << 20) is not None
    assert first_bad_utf8(path, limit=100) is None
    assert first_bad_json_line(path, limit=100) is None
    csv_path = tmp_path / "f.csv"
    csv_path.write_text("a,b\n" + "1,2\n" * 1000 + "1,2,3\n")
    assert first_ragged_row(csv_path, ",", '"', True).line == 1002
    assert first_ragged_row(csv_path, ",", '"', True, limit=100) is None


def test_quoted_multiline_fields_count_lines(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text('a,b\n1,"two\nlines"\n3,4,5\n')
    assert first_ragged_row(path, ",", '"', True).line == 4


def test_the_json_scan_limit_counts_bytes_of_whole_lines(tmp_path):
    """The lines a copy of the file's first ``limit`` bytes holds (an object in a bucket is checked
    by such a copy), whatever their characters."""
    from curate_basics.locate import first_mixed_json_type

    path = tmp_path / "f.jsonl"
    line = json.dumps({"t": "é" * 10}, ensure_ascii=False).encode() + b"\n"  # 10 characters, 20 bytes of é
    path.write_bytes(line * 10)
    scanned = first_mixed_json_type(path, limit=len(line) * 3 + 5)
    assert (scanned.lines, scanned.offset, scanned.complete) == (3, len(line) * 3, False)
    assert first_mixed_json_type(path, limit=len(line) * 10).complete


@pytest.mark.parametrize("name, header", [
    ("d.csv", b"url,alt_text,n\xffote"),
    ("d.csv", b'url,alt_text,"n\xed\xa0\x80ote"'),  # half a surrogate pair, as UTF-8 would write it
    ("d.csv", "url,alt_text,légende".encode("latin-1")),
    ("d.tsv", b"url\talt_text\tn\xc0\xafote"),  # an overlong '/'
])
def test_a_header_that_is_not_utf8_is_refused(curate_main, write_spec, workdir, name, header):
    """Polars reads the rows strictly but the header with bad bytes replaced by U+FFFD: the column
    was carried as 'n\ufffdote' without a word."""
    separator = "\t" if name.endswith(".tsv") else ","
    _write(workdir, name, header + f"\nhttps://example.com/1.jpg{separator}one{separator}x\n".encode())
    _spec(write_spec, name)
    result = curate_main("validate", "spec.yaml")
    assert result.code == 2, result
    column = header.index(next(b for b in header if b >= 0x80).to_bytes(1, "big")) + 1
    assert f"{name} as {name[2:]}, line 1, column {column}: byte 0x" in result.stderr
    assert "replaced by U+FFFD" in result.stderr and "save the file as UTF-8" in result.stderr
