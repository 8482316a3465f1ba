"""Validation reads a compressed (or byte-order-marked) JSON Lines file's columns from a copy of its
first lines, the run from a copy of its whole text. Where a line ending at the scan's limit was in
one copy and not the other, a key found only on it was left out of the run's output without a
word: a text ending exactly at the limit without a final newline, and a gzip text starting with a
byte order mark (the mark, copied away later, counted toward the limit)."""

from __future__ import annotations

import gzip
import json

import curate_basics.sources
import pytest

from curate.errors import SourceError
from curate.testing import run_spec
from curate.testing.runner import read_step_output

BOM = b"\xef\xbb\xbf"
LIMIT = 10_000


def line(i: int) -> bytes:
    return json.dumps({"url": f"https://a/{i}.jpg", "alt_text": f"p {i}"}).encode() + b"\n"


def ending_at(end: int) -> bytes:
    """Lines whose last one, the only one with key ``k``, ends (without its newline) at ``end``."""
    data = b"".join(line(i) for i in range(150))
    last = json.dumps({"url": "https://a/last.jpg", "alt_text": "x", "k": 7}).encode()
    empty = json.dumps({"url": "https://a/f.jpg", "alt_text": ""}).encode() + b"\n"
    filler = json.dumps({"url": "https://a/f.jpg", "alt_text": "y" * (end - len(data) - len(last) - len(empty))})
    return data + filler.encode() + b"\n" + last


def source_of(pm, workdir, name: str, data: bytes):
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / name).write_bytes(data)
    result = run_spec({"source": {"format": "jsonl", "path": str(workdir / name)}, "steps": []}, workdir / "r", pm=pm)
    return read_step_output(result, "source")


def test_text_ending_at_the_limit_keeps_its_last_line_key(pm, workdir, monkeypatch):
    monkeypatch.setattr(curate_basics.sources, "JSONL_SCAN_LIMIT", LIMIT)
    data = ending_at(LIMIT)  # no final newline
    out = source_of(pm, workdir, "t.jsonl.gz", gzip.compress(data))
    assert out["k"].to_list()[-1] == 7 and out.height == 152


@pytest.mark.parametrize("end", range(LIMIT - 4, LIMIT + 3))
@pytest.mark.parametrize("packed", [False, True])
def test_byte_order_mark_does_not_count(pm, workdir, monkeypatch, end, packed):
    monkeypatch.setattr(curate_basics.sources, "JSONL_SCAN_LIMIT", LIMIT)
    data = BOM + ending_at(end) + b"\n" + b"".join(line(i) for i in range(1000, 1100))
    name, data = ("t.jsonl.gz", gzip.compress(data)) if packed else ("t.jsonl", data)
    if end + 1 > LIMIT:  # its line runs past the scan: said, never dropped
        with pytest.raises(SourceError, match="'k'"):
            source_of(pm, workdir, name, data)
        return
    out = source_of(pm, workdir, name, data)
    assert out.filter(out["url"] == "https://a/last.jpg")["k"].to_list() == [7]
