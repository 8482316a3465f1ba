"""A JSON Lines file that starts with a UTF-8 byte order mark (Notepad, PowerShell's ``Out-File``)
is read as the file without it, as CSV files are: it was refused with "line 1: not valid JSON … fix
or remove that line", about a valid line. A mark anywhere else stays what it is: text."""

from __future__ import annotations

import errno
import gzip
import io
import json
from pathlib import Path

import curate_basics.compressed as compressed
import pytest

import curate.diskspace
from curate.errors import CurateError, SourceError
from curate.testing import run_spec
from curate.testing.runner import read_step_output

ROWS = [{"url": f"https://a/{i}.jpg", "alt_text": f"東京 {i}", "n": i} for i in range(40)]
TEXT = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in ROWS).encode()


def leftovers(workdir: Path) -> list[Path]:
    return [p for p in (workdir / "run" / "tmp" / "source").rglob("*") if p.is_file()]


@pytest.mark.parametrize("name, data", [("t.jsonl", b"\xef\xbb\xbf" + TEXT),
                                        ("t.jsonl.gz", gzip.compress(b"\xef\xbb\xbf" + TEXT))])
def test_a_leading_byte_order_mark_is_read_past(pm, workdir, name, data):
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / name).write_bytes(data)
    manifest = run_spec({"source": {"path": name}, "steps": []}, workdir, pm=pm)
    rows = read_step_output(manifest, "source")
    assert rows.columns[:4] == ["uid", "url", "alt_text", "n"] or set(rows.columns) >= {"url", "alt_text", "n"}
    assert rows.sort("n")["alt_text"].to_list() == [row["alt_text"] for row in ROWS]
    assert leftovers(workdir) == [], "the copy without the mark is deleted once read"


def test_a_disk_too_full_for_the_copy_says_it_was_copying_not_decompressing(pm, workdir, monkeypatch):
    monkeypatch.setattr(curate.diskspace, "free_bytes", lambda path: 1000)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "t.jsonl").write_bytes(b"\xef\xbb\xbf" + TEXT)
    with pytest.raises(CurateError) as caught:
        run_spec({"source": {"path": "t.jsonl"}, "steps": [], "run": {"min_free_disk": "10"}}, workdir, pm=pm)
    said, path = str(caught.value), workdir / "t.jsonl"
    assert f"curate stopped copying {path} without its byte order mark after 0 bytes" in said, said
    assert "gunzip" not in said and "without its byte order mark (as UTF-8 without BOM)" in said
    assert leftovers(workdir) == []


def test_a_file_the_disk_does_not_give_back_is_named_not_an_internal_error(tmp_path, monkeypatch):
    class Unreadable(io.BytesIO):
        def read(self, size=-1):
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setitem(compressed.READERS, compressed.BOM, lambda raw: Unreadable())
    (tmp_path / "t.jsonl").write_bytes(b"\xef\xbb\xbf" + TEXT)
    with pytest.raises(SourceError) as caught:
        compressed.decompress(tmp_path / "t.jsonl", compressed.BOM, tmp_path / "copy" / "t.jsonl",
                              shown="t.jsonl", ratio=1, min_free=0)
    assert "cannot read t.jsonl to copy it without its byte order mark: [Errno 5]" in str(caught.value)
    assert list((tmp_path / "copy").iterdir()) == []
