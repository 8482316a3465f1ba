"""Compressed text sources (``a.jsonl.gz``, ``b.tsv.zst``, ``c.csv.xz``), read through a decompressed copy.

gzip, bzip2 and xz are read with Python's own modules; zstd (``.zst``, ``.zstd``) and lz4 (its
frame format, what ``lz4`` writes by default) with pyarrow's streaming codecs, which curate
already needs. A zip archive, and lz4's legacy format (``lz4 -l``), are refused naming the file
and how to convert it.

Every check around the reader (row sizes, field counts, encodings, JSON keys and types, the
locators of errors) reads the text, so a compressed file is decompressed, streaming, into the
run's tmp directory, and the checks and the reader read that copy. Validation decompresses only
the first lines its checks read. What the file starts with decides, not its name: a ``.gz`` that
holds plain text is read as it is (with a warning), a ``.csv`` that holds gzip is decompressed.

The copy is bounded: it stops before the disk holding it falls to ``run.min_free_disk`` (to
``MIN_FREE`` when the check is off: a copy never fills the disk), and once it grows past
``max_decompressed_ratio`` times the compressed size (and past ``RATIO_FLOOR``): a
decompression bomb (a megabyte of gzip holds a gigabyte of zeros; zstd, xz and bzip2 far more)
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

import pyarrow as pa

from curate.diskspace import SpaceGuard, size_text
from curate.errors import SourceError

CHUNK = 1 << 20
PIECE = 64 << 10  # text a prefix reads at a time
READ = 256 << 10  # text read at a time: an error found in a read says where within so many bytes
MIN_FREE = 64 << 20  # bytes a copy leaves free when run.min_free_disk is 0
RATIO_FLOOR = 1 << 30  # a copy this small is never stopped for its ratio (small files compress well)
DEFAULT_RATIO = 200  # alt-text tables compress 3-10 times; a bomb, a thousand times and more
PREFIX_SLACK = 256 << 20  # bytes a prefix may run past its size for its lines (then stops at a whole line)

# What a compressed file starts with, and a name ending that says so.
MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"\xfd7zXZ\x00": "xz", b"\x04\x22\x4d\x18": "lz4",
         b"\x02\x21\x4c\x18": "lz4-legacy", b"PK\x03\x04": "zip",
         **{b"BZh" + bytes([level]) + b"1AY&SY": "bzip2" for level in b"123456789"},
         **{bytes([low, 0x2A, 0x4D, 0x18]): "zstd" for low in range(0x50, 0x60)}}  # a skippable frame (pzstd's)
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
    # pyarrow's streams read every frame of a file (``cat a.zst b.zst``, pzstd's), skip zstd's
    # skippable frames, check a frame's checksum, and raise OSError: "Truncated compressed stream"
    # for one cut short, else the codec's own reason.
    "zstd": lambda raw: pa.CompressedInputStream(raw, "zstd"),
    "lz4": lambda raw: pa.CompressedInputStream(raw, "lz4"),
    BOM: lambda raw: (raw.seek(len(UTF8_BOM)), raw)[1],
}


def starts_with_bom(path: Path) -> bool:
    with open(path, "rb") as file:
        return file.read(len(UTF8_BOM)) == UTF8_BOM


TOOLS = {"gzip": "gzip -t", "bzip2": "bzip2 -t", "xz": "xz -t", "zstd": "zstd -t", "lz4": "lz4 -t"}
READ_CODECS = "gzip (.gz), zstd (.zst, .zstd), bzip2 (.bz2), xz (.xz) and lz4 frames (.lz4)"
_UNREAD = {  # why a compression is not read, and what to do instead
    "lz4-legacy": (f"lz4-compressed in its legacy format (lz4 -l), which curate does not read (it reads "
                   f"{READ_CODECS})",
                   "convert it to lz4's frame format (lz4 -dc FILE | lz4 > FILE.new), or decompress it "
                   "(lz4 -d FILE) and point source.path at the copy"),
    "zip": ("zip-compressed, and a zip file is an archive of files, not one compressed text",
            "unzip it and point source.path at the files it holds"),
}
# Errors the readers raise for a damaged stream; pyarrow's are OSError, its own base in case.
_DAMAGED = (OSError, lzma.LZMAError, zlib.error, pa.ArrowException)
_TRUNCATED = "Truncated compressed stream"  # pyarrow's OSError for a stream cut short


def compression_of(path: Path) -> str | None:
    """The compression ``path`` starts with (its magic bytes), or None for any other file."""
    try:
        with open(path, "rb") as file:
            start = file.read(10)
    except OSError:
        return None
    return next((kind for magic, kind in MAGIC.items() if start.startswith(magic)), None)


def not_text(path: Path, named: str, shown: str) -> SourceError | None:
    """The error for a file named like a ``named``-compressed one that does not start like one nor
    like UTF-8 text (a NUL, or bytes that are not UTF-8, in its first ``READ`` bytes); None when it
    may be text, which is read as it is. The text's own checks named a byte on line 1, not why."""
    with open(path, "rb") as file:
        start = file.read(READ)
    try:
        start.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(start) - 3:  # a character cut at the end of what was read is still text
            return _not_compressed(shown, named, f"the byte at offset {exc.start:,} is not UTF-8")
    nul = start.find(b"\0")
    return None if nul < 0 else _not_compressed(shown, named, f"the byte at offset {nul:,} is a NUL")


def _not_compressed(shown: str, named: str, why: str) -> SourceError:
    check = f" ({TOOLS[named]} FILE checks a {named} file)" if named in TOOLS else ""
    ending = _suffix(shown)
    return SourceError(
        f"{shown} is named like a {named} file ({ending}) but does not start like one, nor like text "
        f"({why}): a download or copy that saved something else?",
        f"fetch the file again{check}; if it is text in another encoding, rename it without {ending} and "
        "name the encoding (source.params.encoding)")


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
    return SourceError(f"{shown} is {why}", fix)


def decompress(path: Path, kind: str, target: Path, *, shown: str, ratio: int, min_free: int,
               prefix: tuple[int, int] | None = None) -> Path:
    """Write the text ``path`` holds, compressed with ``kind``, to ``target``, ``READ`` bytes at a time.

    ``prefix`` (bytes, lines): only the file's first whole lines, up to so many bytes of text after
    a byte order mark and at least so many lines (what validation reads; at most ``PREFIX_SLACK``
    bytes more). ``shown`` names
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
    step = READ if prefix is None else PIECE  # a prefix reads little past its end
    try:
        with open(path, "rb") as raw, READERS[kind](raw) as stream, open(partial, "wb") as out:
            while True:
                try:
                    chunk = stream.read(step)
                except EOFError:
                    raise _cut_short(shown, kind, written, lines, step) from None
                except _DAMAGED as exc:
                    if _TRUNCATED in str(exc):
                        raise _cut_short(shown, kind, written, lines, step) from None
                    if kind == BOM:  # a plain file the disk did not give back: no stream to be damaged
                        raise _unreadable_copy(shown, exc) from None
                    raise _damaged(shown, kind, exc, raw.tell(), written, lines, step) from None
                if not chunk:
                    break
                if prefix is not None and written == 0 and kind != BOM and chunk.startswith(UTF8_BOM):
                    # the mark is copied away next (the copy without it keeps ``prefix`` bytes of
                    # text): a line ending in the limit's last 3 bytes was left out of validation's
                    # columns but read by the run, which dropped its key
                    prefix = (prefix[0] + len(UTF8_BOM), prefix[1])
                end = None
                # past the limit only: a text that ends exactly there, last line unterminated, is
                # copied whole, as the scan of the whole text reads that line (it dropped a key
                # found only there from the run's columns)
                if prefix is not None and written + len(chunk) > prefix[0]:
                    end = _prefix_end(chunk, prefix[0] - written, prefix[1] - lines)
                    if end == 0:  # the limit fell at the end of the copy: its last line goes on here
                        cut_line = True
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
    if kind in ("zstd", "lz4"):
        return _streamed_start(data, kind, limit, shown)
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


def _streamed_start(data: bytes, kind: str, limit: int, shown: str) -> bytes:
    """``text_start`` through a pyarrow stream, which has no decompressor to feed piece by piece:
    the stream over ``data`` is read ``PIECE`` at a time, and a cut (``data`` stops inside a frame)
    ends the text, the piece it cut left out (a read asks the stream to fill it whole)."""
    raw = pa.BufferReader(data)
    stream, pieces, size = pa.CompressedInputStream(raw, kind), [], 0
    while size < limit:
        try:
            piece = stream.read(min(PIECE, limit - size))
        except _DAMAGED as exc:
            if _TRUNCATED in str(exc):
                break
            text = b"".join(pieces)
            raise _damaged(shown, kind, exc, raw.tell(), size, text.count(b"\n"), PIECE) from None
        if not piece:
            break
        pieces.append(piece)
        size += len(piece)
    return b"".join(pieces)


def _prefix_end(chunk: bytes, room: int, lines_needed: int) -> int | None:
    """Where a prefix ends in ``chunk``: past its last newline within ``room`` bytes once the
    prefix holds ``lines_needed`` more lines, else past the line that makes the count (or past the
    line running over ``room``, when none ends within it); None when it needs more of the stream."""
    if room <= 0 and lines_needed <= 0:  # the copy reached the limit with lines enough
        return 0
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
_DISK_FIX = ("decompress the file where there is room (gunzip -k, zstd -dk, xz -dk, bzip2 -dk, lz4 -d) and "
             f"point source.path at the copy, {_ROOM}")
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
