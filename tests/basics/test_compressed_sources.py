"""Compressed CSV, TSV and JSON Lines sources (``a.jsonl.gz``, ``b.tsv.zst``, ``c.csv.xz``, ``d.csv.lz4``)
are read through a decompressed copy, with every check the plain file gets; they were refused. Hostile ones
(cut short, damaged, followed by other bytes, a decompression bomb) stop with an error naming them."""

from __future__ import annotations

import bz2
import gzip
import json
import logging
import lzma
from pathlib import Path

import curate_basics.compressed
import curate_basics.sources
import curate_basics.locate
import polars as pl
import pyarrow as pa
import pytest
from curate_basics.compressed import decompress, text_start
from curate_basics.sources import AutoSource
from hypothesis import given, settings
from hypothesis import strategies as st

import curate.diskspace
from curate.diskspace import DiskNearlyFull
from curate.errors import SourceError, SpecError
from curate.plan import make_plan
from curate.source import SourceContext
from curate.spec import load_spec
from curate.testing import run_spec
from curate.testing.runner import read_step_output
from curate.testing.strategies import alt_texts, urls

COMPRESS = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress,
            ".zst": lambda data: pa.compress(data, codec="zstd", asbytes=True),  # a zstd frame, as zstd writes
            ".lz4": lambda data: pa.compress(data, codec="lz4", asbytes=True)}  # an lz4 frame, as lz4 writes


def table_text(fmt: str, rows: int) -> bytes:
    if fmt == "jsonl":
        return "".join(json.dumps({"url": f"https://a/{i}.jpg", "alt_text": f"a photo {i}", "n": i}) + "\n"
                       for i in range(rows)).encode()
    sep = "," if fmt == "csv" else "\t"
    return (f"url{sep}alt_text{sep}n\n" + "".join(f"https://a/{i}.jpg{sep}a photo {i}{sep}{i}\n"
                                                 for i in range(rows))).encode()


def plan_problems(spec_path: Path, pm) -> str:
    with pytest.raises(SpecError) as caught:
        make_plan(load_spec(spec_path), pm, spec_path.parent / "run")
    return str(caught.value)


def run_error(source: dict, workdir: Path, pm) -> str:
    """What validation or the run says of ``source`` (a small file is checked whole at validation)."""
    with pytest.raises((SourceError, SpecError)) as caught:
        run_spec({"source": source, "steps": []}, workdir, pm=pm)
    return str(caught.value)


def leftovers(workdir: Path) -> list[Path]:
    return [p for p in (workdir / "run" / "tmp" / "source").rglob("*") if p.is_file()]


@pytest.mark.parametrize("ending", list(COMPRESS))
@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_a_compressed_file_gives_the_plain_files_rows(pm, workdir, fmt, ending):
    data = table_text(fmt, 50)
    (workdir / "plain").mkdir(parents=True)
    (workdir / "plain" / f"t.{fmt}").write_bytes(data)
    (workdir / "packed").mkdir()
    (workdir / "packed" / f"t.{fmt}{ending}").write_bytes(COMPRESS[ending](data))
    steps = [{"step": "filter", "params": {"where": "alt_text != 'a photo 7'"}}]
    plain = run_spec({"source": {"path": f"t.{fmt}"}, "steps": steps}, workdir / "plain", pm=pm)
    packed = run_spec({"source": {"path": f"t.{fmt}{ending}"}, "steps": steps}, workdir / "packed", pm=pm)
    assert read_step_output(packed, "filter").equals(read_step_output(plain, "filter"))
    assert read_step_output(packed, "filter").height == 49
    assert leftovers(workdir / "packed") == [], "the decompressed copy is deleted once read"


@pytest.mark.parametrize("fmt", ["auto", "jsonl"])
def test_a_folder_reads_its_compressed_files_as_their_format(pm, workdir, fmt):
    """They were refused; ``a.jsonl.gz`` is a JSON Lines file (auto took the last suffix)."""
    (workdir / "data").mkdir(parents=True)
    (workdir / "data" / "a.jsonl").write_bytes(table_text("jsonl", 3))
    (workdir / "data" / "b.jsonl.gz").write_bytes(gzip.compress(table_text("jsonl", 4)))
    (workdir / "data" / "c.ndjson.xz").write_bytes(lzma.compress(table_text("jsonl", 5)))
    manifest = run_spec({"source": {"path": "data", "format": fmt}, "steps": []}, workdir, pm=pm)
    assert read_step_output(manifest, "source").height == 12


def test_a_multi_member_gzip_file_is_read_whole(pm, workdir):
    """``cat a.gz b.gz`` and pigz/bgzip write several members: each one's rows are read."""
    data = table_text("jsonl", 30)
    cut = data.index(b"\n", len(data) // 2) + 1
    (workdir / "t.jsonl.gz").parent.mkdir(parents=True, exist_ok=True)
    (workdir / "t.jsonl.gz").write_bytes(gzip.compress(data[:cut]) + gzip.compress(data[cut:]))
    manifest = run_spec({"source": {"path": "t.jsonl.gz"}, "steps": []}, workdir, pm=pm)
    assert read_step_output(manifest, "source")["n"].to_list() == list(range(30))


def test_a_file_named_gz_alone_asks_for_its_format(pm, workdir, write_spec):
    (workdir / "t.gz").write_bytes(gzip.compress(table_text("jsonl", 3)))
    problems = plan_problems(write_spec({"source": {"path": "t.gz"}}), pm)
    assert "cannot tell the format of" in problems and "t.gz from its name" in problems
    assert "set source.format to csv, tsv or jsonl" in problems
    manifest = run_spec({"source": {"path": "t.gz", "format": "jsonl"}, "steps": []}, workdir, pm=pm)
    assert read_step_output(manifest, "source").height == 3


def test_compressed_parquet_is_refused_naming_it(pm, workdir, write_spec):
    """Its reader saw the gzip bytes ('a.parquet.gz' was listed by its inner ending)."""
    workdir.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"url": ["u"], "alt_text": ["t"]}).write_parquet(workdir / "a.parquet")
    (workdir / "a.parquet.gz").write_bytes(gzip.compress((workdir / "a.parquet").read_bytes()))
    (workdir / "a.parquet").unlink()
    problems = plan_problems(write_spec({"source": {"path": "a.parquet.gz"}}), pm)
    assert "a.parquet.gz is compressed Parquet" in problems and "gunzip -k" in problems


def test_a_gz_file_that_holds_plain_text_is_read_as_it_is(pm, workdir, caplog):
    """What the file starts with decides, and the warning says so."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "t.csv.gz").write_bytes(table_text("csv", 4))
    with caplog.at_level(logging.WARNING, logger="curate_basics"):
        manifest = run_spec({"source": {"path": "t.csv.gz"}, "steps": []}, workdir, pm=pm)
    assert read_step_output(manifest, "source").height == 4
    assert "t.csv.gz is named like a gzip file, but does not start like one" in caplog.text


@pytest.mark.parametrize("ending", list(COMPRESS))
def test_a_file_cut_short_is_an_error_not_fewer_rows(pm, workdir, ending):
    packed = COMPRESS[ending](table_text("jsonl", 2000))
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"t.jsonl{ending}").write_bytes(packed[: len(packed) * 2 // 3])
    said = run_error({"path": f"t.jsonl{ending}"}, workdir, pm)
    assert f"cannot read {workdir / f't.jsonl{ending}'}: it is cut short" in said
    assert leftovers(workdir) == []


@pytest.mark.parametrize("damage, said", [
    (lambda data: data[:-8] + bytes([data[-8] ^ 0xFF]) + data[-7:], "its gzip stream is damaged"),  # its CRC
    (lambda data: data + b"garbage!", "bytes that are not gzip follow its gzip stream"),
])
def test_a_damaged_gzip_file_is_an_error_naming_it(pm, workdir, damage, said):
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "t.csv.gz").write_bytes(damage(gzip.compress(table_text("csv", 100))))
    text = run_error({"path": "t.csv.gz"}, workdir, pm)
    assert f"cannot read {workdir / 't.csv.gz'}: {said}" in text and "gzip -t FILE" in text


def test_errors_past_validation_name_the_file_and_line_of_its_text(pm, workdir, monkeypatch):
    """Validation decompresses the first lines its checks read, not the file: a cut past them
    passes it, and the run names the file, decompressed, and the line."""
    monkeypatch.setattr(curate_basics.sources, "JSONL_SCAN_LIMIT", 8000)
    data = table_text("jsonl", 3000)
    packed = gzip.compress(data)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "cut.jsonl.gz").write_bytes(packed[: len(packed) - 100])
    (workdir / "spec.yaml").write_text(json.dumps({"name": "t", "source": {"path": "cut.jsonl.gz"}}))
    make_plan(load_spec(workdir / "spec.yaml"), pm, workdir / "run")
    assert leftovers(workdir) == [], "validation's copy of the first lines is deleted"
    lines = data.split(b"\n")
    lines[2499] = b'{"url": "https://a/x.jpg", "alt_text": "t", "n": 1, "extra": 2}'
    (workdir / "late.jsonl.gz").write_bytes(gzip.compress(b"\n".join(lines)))
    said = run_error({"path": "late.jsonl.gz"}, workdir, pm)
    assert f"cannot read {workdir / 'late.jsonl.gz'} (decompressed) as jsonl, line 2500: key 'extra'" in said
    lines[2499] = b'{"url": "x", oops'  # the reader fails on it: its error is located in the copy
    (workdir / "broken.jsonl.xz").write_bytes(lzma.compress(b"\n".join(lines)))
    said = run_error({"path": "broken.jsonl.xz"}, workdir, pm)
    assert f"cannot read {workdir / 'broken.jsonl.xz'} (decompressed) as jsonl, line 2500, column 14: not valid" \
        in said
    ragged = table_text("csv", 40).replace(b"a photo 29", b"a,b")  # line 31: the header, then rows 0…29
    (workdir / "ragged.csv.bz2").write_bytes(bz2.compress(ragged))
    said = run_error({"path": "ragged.csv.bz2"}, workdir, pm)
    assert f"cannot read {workdir / 'ragged.csv.bz2'} (decompressed) as csv, line 31: 4 fields" in said


def test_a_decompression_bomb_stops_at_its_ratio(pm, workdir, monkeypatch):
    monkeypatch.setattr(curate_basics.compressed, "RATIO_FLOOR", 256 << 10)  # not the gigabyte a run allows
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "bomb.jsonl.gz").write_bytes(gzip.compress(b'{"url": "u", "alt_text": "t"}\n' * 30_000))
    said = run_error({"path": "bomb.jsonl.gz"}, workdir, pm)
    assert "over 200 times its size (source.params.max_decompressed_ratio): a decompression bomb?" in said
    assert leftovers(workdir) == []
    manifest = run_spec({"source": {"path": "bomb.jsonl.gz", "params": {"max_decompressed_ratio": 10_000}},
                         "steps": []}, workdir, pm=pm)
    assert read_step_output(manifest, "source").height == 30_000


def test_a_copy_stops_before_the_disk_fills(tmp_path, monkeypatch):
    copy = tmp_path / "copy"
    monkeypatch.setattr(curate.diskspace, "free_bytes",  # a disk of 100 MB free, less what the copy holds
                        lambda path: 100_000_000 - sum(p.stat().st_size for p in copy.rglob("*")))
    packed = tmp_path / "t.jsonl.gz"
    packed.write_bytes(gzip.compress(b'{"url": "u", "alt_text": "t"}\n' * 300_000))  # 9 MB of text
    with pytest.raises(DiskNearlyFull) as caught:
        decompress(packed, "gzip", copy / "t.jsonl", shown="t.jsonl.gz", ratio=10_000,
                   min_free=95_000_000)
    assert "curate stopped decompressing t.jsonl.gz" in str(caught.value)
    assert list(copy.iterdir()) == []


ROWS = st.lists(st.fixed_dictionaries({"url": urls(), "alt_text": alt_texts(max_size=40, allow_huge=False)}),
                min_size=1, max_size=30)


@settings(max_examples=30, deadline=None)
@given(rows=ROWS, fmt=st.sampled_from(["csv", "jsonl"]), ending=st.sampled_from(list(COMPRESS)),
       members=st.integers(1, 3))
def test_any_table_compressed_any_way_reads_as_the_plain_file(tmp_path_factory, rows, fmt, ending, members):
    """Property: a table written as text and compressed (in one stream or several) reads as the
    plain file does, or fails where it fails."""
    root = tmp_path_factory.mktemp("packed")
    frame = pl.DataFrame(rows, schema={"url": pl.Utf8, "alt_text": pl.Utf8})
    plain = root / f"t.{fmt}"
    frame.write_csv(plain) if fmt == "csv" else frame.write_ndjson(plain)
    data = plain.read_bytes()
    cuts = sorted({len(data) * i // members for i in range(members + 1)})
    packed = root / f"p.{fmt}{ending}"
    packed.write_bytes(b"".join(COMPRESS[ending](data[a:b]) for a, b in zip(cuts, cuts[1:])))

    def read(path: Path) -> pl.DataFrame | str:
        source = AutoSource(AutoSource.Params(), SourceContext(root / "run", root, 0, str(path)))
        try:
            return pl.concat([frame.collect() for frame in source.scan()])
        except SourceError as error:
            return type(error).__name__

    expected, got = read(plain), read(packed)
    assert got == expected if isinstance(expected, str) else got.equals(expected)


def test_a_folder_and_a_glob_read_zstd_and_plain_files_alike(pm, workdir):
    """zstd (.zst, .zstd) was refused: 'zstd needs the zstandard module'. Several frames (``cat``,
    pzstd) and a skippable frame before them are read too."""
    zstd = COMPRESS[".zst"]
    data = workdir / "data"
    data.mkdir(parents=True)
    (data / "a.csv").write_bytes(table_text("csv", 3))
    (data / "b.csv.zst").write_bytes(zstd(table_text("csv", 4)))
    text = table_text("csv", 6)
    cut = text.index(b"\n", len(text) // 2) + 1
    skippable = bytes.fromhex("502a4d18") + (4).to_bytes(4, "little") + b"skip"
    (data / "c.csv.zstd").write_bytes(skippable + zstd(text[:cut]) + zstd(text[cut:]))
    (data / "d.csv.gz").write_bytes(gzip.compress(table_text("csv", 2)))
    folder = read_step_output(run_spec({"source": {"path": str(data)}, "steps": []}, workdir / "f", pm=pm),
                              "source")
    glob = read_step_output(run_spec({"source": {"path": str(data / "*.csv*"), "format": "csv"}, "steps": []},
                                     workdir / "g", pm=pm), "source")
    assert folder.height == 15 and folder.equals(glob)
    assert folder["n"].to_list() == [str(n) for n in [*range(3), *range(4), *range(6), *range(2)]]


@pytest.mark.parametrize("ending, kind", [(".zst", "zstd"), (".lz4", "lz4")])
def test_a_damaged_zstd_or_lz4_file_is_an_error_naming_it(pm, workdir, ending, kind):
    workdir.mkdir(parents=True, exist_ok=True)
    packed = COMPRESS[ending](table_text("jsonl", 3000))
    flipped = packed[:12] + bytes([packed[12] ^ 0xFF]) + packed[13:]  # its first block (no checksum to catch it later)
    for name, data in [(f"flip.jsonl{ending}", flipped), (f"tail.jsonl{ending}", packed + b"garbage!")]:
        (workdir / name).write_bytes(data)
        said = run_error({"path": name}, workdir, pm)
        assert f"cannot read {workdir / name}: its {kind} stream is damaged" in said and f"{kind} -t FILE" in said
        assert leftovers(workdir) == []


def test_a_file_named_gz_that_is_neither_gzip_nor_text_is_refused_naming_it(pm, workdir, write_spec):
    """Its text checks said 'line 1, column 2: byte 0xe4 is not valid UTF-8', not what the file is."""
    (workdir / "t.csv.gz").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)))
    problems = plan_problems(write_spec({"source": {"path": "t.csv.gz"}}), pm)
    assert "t.csv.gz is named like a gzip file (.gz) but does not start like one, nor like text" in problems
    assert "gzip -t FILE" in problems


def test_a_zstd_bomb_of_blank_lines_is_refused_not_read_for_minutes(pm, workdir, monkeypatch):
    """10 KB of zstd hold 10 GB of newlines: validation's scan of its first 32 MiB took 180 s (a
    failed json.loads per blank line), the run's more. Past MAX_BLANK_LINES the file is refused."""
    monkeypatch.setattr(curate_basics.locate, "MAX_BLANK_LINES", 1000)
    workdir.mkdir(parents=True, exist_ok=True)
    row = b'{"url": "u", "alt_text": "t"}\n'
    (workdir / "bomb.jsonl.zst").write_bytes(COMPRESS[".zst"](row + b"\n" * 5000 + row))
    said = run_error({"path": "bomb.jsonl.zst"}, workdir, pm)
    assert "bomb.jsonl.zst (decompressed) as jsonl, line 1002: the file holds more than 1,000 blank lines" in said
    assert "grep -v" in said
    monkeypatch.setattr(curate_basics.sources, "JSONL_SCAN_LIMIT", 4096)  # the lines past the scan count too
    said = run_error({"path": "bomb.jsonl.zst"}, workdir, pm)
    assert "the file holds more than 1,000 blank lines" in said
    (workdir / "few").mkdir()
    (workdir / "few" / "some.jsonl.zst").write_bytes(COMPRESS[".zst"](row + b"\n" * 900 + row))
    manifest = run_spec({"source": {"path": "some.jsonl.zst"}, "steps": []}, workdir / "few", pm=pm)
    assert read_step_output(manifest, "source").height == 2  # fewer blank lines: skipped, as the reader does


@pytest.mark.parametrize("ending, kind", [(".zst", "zstd"), (".lz4", "lz4")])
def test_the_first_bytes_of_a_zstd_or_lz4_object_give_its_first_text(ending, kind):
    """An object in a bucket has its first bytes fetched: their stream stops anywhere."""
    text = table_text("jsonl", 20_000)
    packed = COMPRESS[ending](text)
    start = text_start(packed[: len(packed) // 2], kind, 1 << 20, "s3://b/t.jsonl" + ending)
    assert 0 < len(start) < len(text) and text.startswith(start)
    assert text_start(packed, kind, 1000, "x") == text[:1000]
    broken = packed[:12] + bytes([packed[12] ^ 0xFF]) + packed[13:]
    with pytest.raises(SourceError, match=f"its {kind} stream is damaged"):
        text_start(broken, kind, 1 << 22, "s3://b/t.jsonl" + ending)
