"""A compressed JSON Lines file, or one that starts with a byte order mark, is read through copies:
validation's of its first lines, the run's of its whole text. Each was scanned for values of mixed
types (1.3 CPU s each on a 271 MB .jsonl.zst); the run now takes the scan validation made when the
file is unchanged and the whole copy's scan would read the same lines (curate_basics.headscan)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import curate_basics.locate
import curate_basics.sources
import polars as pl
import pyarrow as pa
import pytest
from curate_basics.headscan import carried
from curate_basics.locate import first_mixed_json_type
from curate_basics.sources import AutoSource, JsonlSource
from hypothesis import example, given
from hypothesis import strategies as st

from curate.errors import SourceError
from curate.source import SourceContext
from curate.testing import run_spec
from curate.testing.runner import read_step_output

BOM = b"\xef\xbb\xbf"


def rows(count: int, start: int = 0) -> bytes:
    return "".join(json.dumps({"url": f"https://a/{i}.jpg", "alt_text": f"a photo {i}", "n": i}) + "\n"
                   for i in range(start, start + count)).encode()


def counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files scanned for mixed types, one per scan."""
    scanned: list[str] = []
    real = curate_basics.locate.first_mixed_json_type

    def counted(path: Path, limit: int) -> object:
        scanned.append(Path(path).name)
        return real(path, limit)

    monkeypatch.setattr(curate_basics.locate, "first_mixed_json_type", counted)
    return scanned


@pytest.mark.parametrize("name, fmt, pack", [
    ("t.jsonl.zst", "jsonl", lambda data: pa.compress(data, codec="zstd", asbytes=True)),
    ("t.jsonl.gz", "auto", gzip.compress),
    ("t.jsonl", "jsonl", lambda data: BOM + data),  # copied without its mark
])
def test_validation_and_the_run_scan_a_file_once(pm, workdir, monkeypatch, name, fmt, pack):
    monkeypatch.setattr(curate_basics.sources, "JSONL_SCAN_LIMIT", 10_000)  # ~160 lines of 2,000
    data = rows(2000)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "plain.jsonl").write_bytes(data)
    (workdir / name).write_bytes(pack(data))
    (workdir / "small.jsonl.gz").write_bytes(gzip.compress(rows(50)))  # whole in validation's copy
    scanned = counting(monkeypatch)

    def run(path: str, where: str) -> dict:
        spec = {"source": {"format": fmt, "path": str(workdir / path)}, "steps": []}
        return run_spec(spec, workdir / where, pm=pm)

    plain = run("plain.jsonl", "p")
    assert scanned == ["plain.jsonl"], "a plain file was scanned once already"
    scanned.clear()
    packed = run(name, "c")
    assert len(scanned) == 1 and "head-" in scanned[0], scanned
    assert read_step_output(packed, "source").equals(read_step_output(plain, "source"))
    scanned.clear()
    small = run("small.jsonl.gz", "s")
    assert len(scanned) == 1 and read_step_output(small, "source").height == 50


LINE = st.one_of(
    st.just(b""),  # a blank line
    st.builds(lambda key, size: json.dumps({key: "x" * size} if key != "n" else {key: size}).encode(),
              st.sampled_from(["url", "alt_text", "n", "late"]), st.integers(0, 40)),
)


ROW, LATE = b'{"n": 1}', b'{"late": "x"}'  # 9 and 14 bytes, with their newlines


@given(lines=st.lists(LINE, min_size=1, max_size=60), bom=st.booleans(), ending=st.booleans(),
       limit=st.integers(1, 1500), least=st.integers(1, 8))
# The byte order mark moves where validation's copy is cut by its 3 bytes: LATE ends at the limit
# in the text without it, and is not in that copy; the run's scan reads it (its key is a column).
@example(lines=[ROW] * 4 + [LATE] + [ROW] * 3, bom=True, ending=True, limit=50, least=2)
# A last line without its newline, ending at the limit, is left out of validation's copy too.
@example(lines=[ROW] * 4 + [LATE], bom=False, ending=False, limit=49, least=2)
def test_the_scan_carried_over_is_the_scan_of_the_whole_copy(tmp_path_factory, lines, bom, ending, limit,
                                                             least):
    """Property: where the run takes validation's scan it is the scan of its own copy, and what the
    source reads (its columns and rows, or its error) is what it read scanning the copy again."""
    root = tmp_path_factory.mktemp("carried")
    text = (BOM if bom else b"") + b"\n".join(lines) + (b"\n" if ending else b"")
    (root / "t.jsonl.gz").write_bytes(gzip.compress(text))
    taken: list[bool] = []

    def checked(head, file, copy, scan_limit):
        scan = carried(head, file, copy, scan_limit)
        if scan is not None:
            assert scan == first_mixed_json_type(copy, scan_limit)
        taken.append(scan is not None)
        return scan

    def read(carry: bool) -> tuple[dict, pl.DataFrame] | str:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(curate_basics.sources, "JSONL_SCAN_LIMIT", limit)
            patch.setattr(curate_basics.sources, "JSONL_INFER_MIN_LINES", least)
            patch.setattr(curate_basics.sources, "carried", checked if carry else lambda *_: None)
            source = JsonlSource(JsonlSource.Params(), SourceContext(root / "run", root, 0, "t.jsonl.gz"))
            try:
                schema = source.schema()
                return schema, pl.concat([frame.collect() for frame in source.scan()], how="diagonal")
            except SourceError as error:
                return str(error)

    again, took = read(carry=False), read(carry=True)
    assert took == again if isinstance(again, str) else (took[0] == again[0] and took[1].equals(again[1]))


def test_a_file_changed_since_validation_is_scanned_again(workdir, monkeypatch):
    monkeypatch.setattr(curate_basics.sources, "JSONL_SCAN_LIMIT", 10_000)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "t.jsonl.gz"
    path.write_bytes(gzip.compress(rows(2000)))
    scanned = counting(monkeypatch)
    for first, scans in (0, 1), (5, 2):  # then rewritten between validation and the run
        source = AutoSource(AutoSource.Params(), SourceContext(workdir / "run", workdir, 0, str(path)))
        source.schema()
        if first:
            path.write_bytes(gzip.compress(rows(2000, first)))
        assert pl.concat([frame.collect() for frame in source.scan()])["n"][0] == first
        assert len(scanned) == scans, scanned
        scanned.clear()
