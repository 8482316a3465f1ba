"""Text files in another encoding than UTF-8: checked by name at plan time, decoded for the reader.

Polars reads only UTF-8 (or UTF-8 with bad bytes replaced). A file in cp1252, latin1, UTF-16…
is transcoded to UTF-8 first, streaming (a megabyte at a time), strictly: a byte the encoding
does not define is an error naming the line, not a silently replaced character.
"""

from __future__ import annotations

import codecs
import io
from pathlib import Path

from curate.errors import SourceError

CHUNK = 1 << 20
LOSSY = "utf8-lossy"
ENCODING_HINT = ("utf8, utf8-lossy (bad bytes become U+FFFD) or a Python codec name such as "
                 "cp1252 (most Windows and web exports), latin1 or utf-16")


def check_encoding(name: str) -> str:
    """``name`` if curate can read text in it; a ValueError (a spec problem) otherwise."""
    if name.lower() == LOSSY:
        return name
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise ValueError(f"unknown encoding {name!r}: use {ENCODING_HINT}") from None
    if not getattr(info, "_is_text_encoding", True):  # base64, zlib, rot13…: not a text encoding
        raise ValueError(f"{name!r} is not a text encoding: use {ENCODING_HINT}")
    return name


def codec_to_transcode(name: str) -> str | None:
    """The Python codec to decode a file with first, or None when Polars reads it as it is."""
    if name.lower() == LOSSY:
        return None
    codec = codecs.lookup(name).name
    return None if codec == "utf-8" else codec


def transcode(path: Path, codec: str, target: Path) -> Path:
    """Write ``path`` decoded from ``codec`` as UTF-8 to ``target``, in bounded memory."""
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    line, consumed = 1, 0
    with open(path, "rb") as source, open(partial, "w", encoding="utf-8", newline="") as out:
        while True:
            chunk = source.read(CHUNK)
            state = decoder.getstate()
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                partial.unlink(missing_ok=True)
                raise _decode_error(path, codec, exc, state, chunk, consumed, line) from None
            out.write(text)
            line += text.count("\n")
            consumed += len(chunk)
            if not chunk:
                break
    partial.replace(target)
    return target


def _decode_error(path: Path, codec: str, exc: UnicodeDecodeError, state: tuple, chunk: bytes,
                  consumed: int, line: int) -> SourceError:
    # The error's offsets count from the decoder's buffered bytes (the tail of the last chunk,
    # for multi-byte codecs) followed by this chunk.
    buffered = state[0] if isinstance(state[0], bytes) else b""
    data = buffered + chunk
    before = codecs.getincrementaldecoder(codec)(errors="replace")
    before.setstate((b"", state[1]))
    text = before.decode(data[: exc.start])
    line += text.count("\n")
    column = len(text) - (text.rfind("\n") + 1) + 1
    offset = consumed - len(buffered) + exc.start
    return SourceError(
        f"cannot read {path} as {codec}, line {line}, column {column}: byte 0x{data[exc.start]:02x} "
        f"(offset {offset}) is not valid {codec}",
        "name the file's real encoding in source.params.encoding (latin1 decodes every byte; "
        "utf8-lossy replaces bad bytes with U+FFFD)",
    )


def decoded_prefix(path: Path, codec: str, limit: int = CHUNK) -> io.BytesIO:
    """The first whole lines of ``path`` (about ``limit`` bytes), as UTF-8: enough for a header."""
    with open(path, "rb") as handle:
        data = handle.read(limit)
        more = bool(handle.read(1))
    text = data.decode(codec, errors="replace")
    if more and "\n" in text:
        text = text[: text.rindex("\n") + 1]
    return io.BytesIO(text.encode("utf-8"))
