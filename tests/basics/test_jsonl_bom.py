"""A JSON Lines file that starts with a UTF-8 byte order mark (Notepad, PowerShell's ``Out-File``)
is read as the file without it, as CSV files are: it was refused with "line 1: not valid JSON … fix
or remove that line", about a valid line. A mark anywhere else stays what it is: text."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

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
