"""Compressed text sources (``a.jsonl.gz``, ``b.tsv.bz2``, ``c.csv.xz``), read through a decompressed copy.

Every check around the reader (row sizes, field counts, encodings, JSON keys and types, the
locators of errors) reads the text, so a compressed file is decompressed, streaming, into the
run's tmp directory, and the checks and the reader read that copy. Validation decompresses only
the first lines its checks read. What the file starts with decides, not its name: a ``.gz`` that
holds plain text is read as it is (with a warning), a ``.csv`` that holds gzip is decompressed.

The copy is bounded: it stops before the disk holding it falls to ``run.min_free_disk`` (to
``MIN_FREE`` when the check is off: a copy never fills the disk), and once it grows past
``max_decompressed_ratio`` times the compressed size (and past ``RATIO_FLOOR``): a
decompression bomb (a megabyte of gzip holds a gigabyte of zeros; xz and bzip2 hold far more)
stops with an error naming the ratio, not a full disk. A stream cut short, a damaged one (a CRC
that does not match) and bytes after its end are errors naming the file, never fewer rows.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO

from curate.diskspace import SpaceGuard, size_text
from curate.errors import SourceError

CHUNK = 1 << 20
READ = 256 << 10  # text read at a time: an error found in a read says where within so many bytes
MIN_FREE = 64 << 20  # bytes a copy leaves free when run.min_free_disk is 0
RATIO_FLOOR = 1 << 30  # a copy this small is never stopped for its ratio (small files compress well)
DEFAULT_RATIO = 200  # alt-text tables compress 3-10 times; a bomb, a thousand times and more
PREFIX_SLACK = 256 << 20  # bytes a prefix may run past its size for its lines (then stops at a whole line)

# What a compressed file starts with, and a name ending that says so.
MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"\xfd7zXZ\x00": "xz", b"\x04\x22\x4d\x18": "lz4",
         b"PK\x03\x04": "zip", **{b"BZh" + bytes([level]) + b"1AY&SY": "bzip2" for level in b"123456789"}}
ENDINGS = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd", ".bz2": "bzip2", ".xz": "xz",
           ".lzma": "xz", ".lz4": "lz4", ".zip": "zip"}
# Not a compression: a JSON Lines file that starts with a UTF-8 byte order mark (Notepad and
# PowerShell write one), copied without it as a compressed file is copied decompressed. Polars'
# JSON reader took the mark for the first line's text ("not valid JSON"); its CSV reader skips it.
BOM, UTF8_BOM = "utf8-bom", b"\xef\xbb\xbf"
READERS: dict[str, Callable[[IO[bytes]], IO[bytes]]] = {
    "gzip": lambda raw: gzip.GzipFile(fileobj=raw, mode="rb"),  # every member of a multi-member file
    "bzip2": lambda raw: bz2.BZ2File(raw),
    "xz": lambda raw: lzma.LZMAFile(raw),
    BOM: lambda raw: (raw.seek(len(UTF8_BOM)), raw)[1],
}


def starts_with_bom(path: Path) -> bool:
    with open(path, "rb") as file:
        return file.read(len(UTF8_BOM)) == UTF8_BOM
TOOLS = {"gzip": "gzip -t", "bzip2": "bzip2 -t", "xz": "xz -t"}
_UNREAD = {  # why a compression is not read, and what to do instead
    "zstd": ("curate reads gzip, bzip2 and xz (Python's own modules); zstd needs the zstandard module, "
             "which is not installed", "decompress it first (zstd -dk FILE), or recompress it as gzip"),
    "lz4": ("curate reads gzip, bzip2 and xz (Python's own modules); lz4 needs the lz4 module, which is not "
            "installed", "decompress it first (lz4 -d FILE), or recompress it as gzip"),
    "zip": ("a zip file is an archive of files, not one compressed text", "unzip it and point source.path at "
                                                                          "the files it holds"),
}


def compression_of(path: Path) -> str | None:
    """The compression ``path`` starts with (its magic bytes), or None for any other file."""
    try:
        with open(path, "rb") as file:
            start = file.read(10)
    except OSError:
        return None
    return next((kind for magic, kind in MAGIC.items() if start.startswith(magic)), None)


def named_compression(name: str) -> str | None:
    """The compression ``name``'s last ending says (``a.jsonl.gz``: gzip), or None."""
    return ENDINGS.get(_suffix(name).lower())


def text_suffix(path: Path) -> str:
    """The ending that says what text a file holds, past a compression's: ``.jsonl`` for ``a.jsonl.gz``."""
    name = path.name
    if named_compression(name) is not None:
        name = name[:-len(_suffix(name))]  # Path.with_suffix("")
    return _suffix(name).lower()


def _suffix(name: str) -> str:
    """``Path(name).suffix``, without making a Path of a file's name (asked several times of every
    file listed: ~4 us each, 0.3 s of a source of 10,000 files)."""
    if "/" in name:
        return Path(name).suffix
    dot = name.rfind(".")
    return name[dot:] if 0 < dot < len(name) - 1 else ""


def text_name(name: str) -> str:
    """``name`` without its compression ending: ``a.jsonl`` for ``a.jsonl.gz``."""
    return str(Path(name).with_suffix("")) if named_compression(name) is not None else name


def unreadable(kind: str, shown: str) -> SourceError | None:
    """The error for a file compressed in a way curate does not read; None for one it reads."""
    if kind in READERS:
        return None
    why, fix = _UNREAD[kind]
    return SourceError(f"{shown} is {kind}-compressed, and {why}", fix)


def decompress(path: Path, kind: str, target: Path, *, shown: str, ratio: int, min_free: int,
               prefix: tuple[int, int] | None = None) -> Path:
    """Write the text ``path`` holds, compressed with ``kind``, to ``target``, ``READ`` bytes at a time.

    ``prefix`` (bytes, lines): only the file's first whole lines, up to so many bytes and at least
    so many lines (what validation reads; at most ``PREFIX_SLACK`` bytes more). ``shown`` names
    the file in messages."""
    compressed_size = path.stat().st_size
    cap = max(ratio * compressed_size, RATIO_FLOOR)
    doing, fix = (f"copying {shown} without its byte order mark", _BOM_DISK_FIX) if kind == BOM else \
        (f"decompressing {shown}", _DISK_FIX)
    guard = SpaceGuard(target.parent, min_free if min_free > 0 else MIN_FREE, doing, fix)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    written = lines = 0
    cut_line = False  # the copy may end inside a line, which is dropped
    step = READ if prefix is None else 64 << 10  # a prefix reads little past its end
    try:
        with open(path, "rb") as raw, READERS[kind](raw) as stream, open(partial, "wb") as out:
            while True:
                try:
                    chunk = stream.read(step)
                except EOFError:
                    raise _cut_short(shown, kind, written, lines, step) from None
                except (OSError, lzma.LZMAError, zlib.error) as exc:
                    if kind == BOM:  # a plain file the disk did not give back: no stream to be damaged
                        raise _unreadable_copy(shown, exc) from None
                    raise _damaged(shown, kind, exc, raw.tell(), written, lines, step) from None
                if not chunk:
                    break
                end = None
                if prefix is not None and written + len(chunk) >= prefix[0]:
                    end = _prefix_end(chunk, prefix[0] - written, prefix[1] - lines)
                    if end is None and written + len(chunk) >= prefix[0] + PREFIX_SLACK:
                        end, cut_line = len(chunk), True
                    chunk = chunk if end is None else chunk[:end]
                if written + len(chunk) > cap:
                    raise _too_large(shown, kind, compressed_size, written + len(chunk), ratio)
                guard.wrote(len(chunk))
                out.write(chunk)
                written += len(chunk)
                lines += chunk.count(b"\n")
                if end is not None:
                    break
        if cut_line:
            _drop_cut_line(partial)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def text_start(data: bytes, kind: str, limit: int, shown: str) -> bytes:
    """Up to ``limit`` bytes of the text that ``data``, the first bytes of a file compressed with
    ``kind`` (a range of an object in a bucket), decompresses to: its stream may stop anywhere."""
    new = {"gzip": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS), "bzip2": bz2.BZ2Decompressor,
           "xz": lzma.LZMADecompressor}[kind]
    text, rest = b"", data
    while rest and len(text) < limit:
        stream = new()
        try:
            text += stream.decompress(rest, limit - len(text))
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
            raise _damaged(shown, kind, exc, len(data) - len(rest), len(text), text.count(b"\n"),
                           limit) from None
        if not stream.eof:  # the text reached the limit, or the data stopped inside this stream
            break
        rest = stream.unused_data
        if kind == "gzip" and rest and not rest.startswith(b"\x1f\x8b"):
            rest = rest.lstrip(b"\0")  # gzip's readers skip zeros padding a file
            if rest:
                raise _damaged(shown, kind, OSError(f"Not a gzipped file ({rest[:2]!r})"),
                               len(data) - len(rest), len(text), text.count(b"\n"), limit)
    return text


def _prefix_end(chunk: bytes, room: int, lines_needed: int) -> int | None:
    """Where a prefix ends in ``chunk``: past its last newline within ``room`` bytes once the
    prefix holds ``lines_needed`` more lines, else past the line that makes the count (or past the
    line running over ``room``, when none ends within it); None when it needs more of the stream."""
    within = chunk[:max(room, 0)]
    found = within.count(b"\n")
    if found >= lines_needed and found:
        return within.rindex(b"\n") + 1
    at = len(within) - 1
    while True:
        at = chunk.find(b"\n", at + 1)
        if at < 0:
            return None
        found += 1
        if found >= lines_needed:
            return at + 1


def _drop_cut_line(path: Path) -> None:
    """Keep the whole lines of ``path``: the last one of a cut stream may be cut too."""
    size = path.stat().st_size
    with open(path, "rb+") as file:
        back = min(size, CHUNK)
        while back:
            file.seek(size - back)
            tail = file.read(back)
            if b"\n" in tail:
                file.truncate(size - back + tail.rindex(b"\n") + 1)
                return
            if back == size:
                break
            back = min(size, back * 2)
        file.truncate(0)


_ROOM = "free disk space, or put run.dir on a bigger disk (the copy goes to RUN_DIR/tmp/source)"
_DISK_FIX = ("decompress the file where there is room (gunzip -k, xz -dk, bzip2 -dk) and point "
             f"source.path at the copy, {_ROOM}")
_BOM_DISK_FIX = ("save the file without its byte order mark (as UTF-8 without BOM) and point source.path at "
                 f"it, {_ROOM}")


def _where(written: int, lines: int, step: int) -> str:
    """Where in its text a read failed: it decompresses ``step`` bytes at a time."""
    if not written:
        return f"within its first {size_text(step)} of text"
    return (f"after line {lines:,} of its text ({size_text(written)}), within the {size_text(step)} "
            "that follow")


def _cut_short(shown: str, kind: str, written: int, lines: int, step: int) -> SourceError:
    return SourceError(
        f"cannot read {shown}: it is cut short: its {kind} stream ends before its end marker, "
        f"{_where(written, lines, step)}; a download or copy that stopped early?",
        f"download or copy it again, whole ({TOOLS[kind]} FILE checks it); to read the rows it holds, "
        "decompress what there is into a file of its own and point source.path at that")


def _unreadable_copy(shown: str, error: Exception) -> SourceError:
    return SourceError(f"cannot read {shown} to copy it without its byte order mark: {error}",
                       "check the file and the disk it is on (cat FILE > /dev/null reads it whole)")


def _damaged(shown: str, kind: str, error: Exception, offset: int, written: int, lines: int,
             step: int) -> SourceError:
    reason = str(error).strip() or type(error).__name__
    if "Not a gzipped file" in reason and offset > 2:  # what follows a gzip member must be another
        what = f"bytes that are not gzip follow its gzip stream (near compressed byte {offset:,})"
    else:
        what = (f"its {kind} stream is damaged, or followed by bytes that are not {kind}, near compressed "
                f"byte {offset:,}, {_where(written, lines, step)}")
    return SourceError(f"cannot read {shown}: {what} ({reason})",
                       "the file was damaged or cut in a copy or download: fetch it again "
                       f"({TOOLS[kind]} FILE checks it); bytes appended after the stream must be removed")


def _too_large(shown: str, kind: str, compressed: int, text: int, ratio: int) -> SourceError:
    return SourceError(
        f"cannot read {shown}: its {size_text(compressed)} of {kind} decompress to more than "
        f"{size_text(text)}, over {ratio:,} times its size (source.params.max_decompressed_ratio): "
        "a decompression bomb? curate stopped rather than fill the disk",
        "if the file is meant, raise source.params.max_decompressed_ratio, or decompress it yourself "
        "where there is room and point source.path at the copy")
