"""Find where a text source file is broken, when the reader only says that it is.

Polars reports "invalid utf-8 sequence", "found more fields than defined in 'Schema'" or
"Syntax at character 0" without a line. These scans read the file once more, streaming and
bounded (``limit`` bytes), to name the first bad line, so the fix is one editor jump away.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

LIMIT = 512 * 1024 * 1024  # bytes scanned at most; a 10 GB file is not re-read to word an error


@dataclass(frozen=True)
class Location:
    line: int  # 1-based
    column: int | None  # 1-based; bytes for UTF-8 errors, characters otherwise
    what: str

    def render(self) -> str:
        column = f", column {self.column}" if self.column is not None else ""
        return f"line {self.line}{column}: {self.what}"


def first_bad_utf8(path: Path, limit: int = LIMIT) -> Location | None:
    """The first byte that is not valid UTF-8."""
    line, line_start, offset, carry = 1, 0, 0, b""
    with open(path, "rb") as handle:
        while offset < limit:
            chunk = handle.read(min(1 << 20, limit - offset))
            if not chunk:
                break
            data = carry + chunk
            base = offset - len(carry)
            try:
                data.decode("utf-8")
                good = len(data)
            except UnicodeDecodeError as exc:
                # An error in the last 3 bytes may be a character split across chunks.
                if exc.reason == "unexpected end of data" and len(data) - exc.start < 4:
                    good = exc.start
                else:
                    newlines = data.count(b"\n", 0, exc.start)
                    if newlines:
                        line_start = base + data.rindex(b"\n", 0, exc.start) + 1
                    position = base + exc.start
                    return Location(line + newlines, position - line_start + 1,
                                    f"byte 0x{data[exc.start]:02x} (offset {position}) is not valid UTF-8")
            newlines = data.count(b"\n", 0, good)
            if newlines:
                line_start = base + data.rindex(b"\n", 0, good) + 1
            line += newlines
            carry = data[good:]
            offset += len(chunk)
    return None


def first_bad_json_line(path: Path, limit: int = LIMIT) -> Location | None:
    """The first non-blank line that is not one JSON object."""
    read = 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            read += len(text)
            if read > limit:
                return None
            if not text.strip():
                continue
            try:
                value = json.loads(text.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                return Location(number, exc.colno, f"not valid JSON: {exc.msg}")
            if not isinstance(value, dict):
                return Location(number, 1, f"a JSON {type(value).__name__}, not an object")
    return None


def first_ragged_row(path: Path, separator: str, quote_char: str | None, has_header: bool,
                     limit: int = LIMIT, encoding: str = "utf-8") -> Location | None:
    """The first row whose field count differs from the first row's (the header's)."""
    with open(path, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")
        quoting = csv.QUOTE_MINIMAL if quote_char else csv.QUOTE_NONE
        reader = csv.reader(text, delimiter=separator, quotechar=quote_char or '"', quoting=quoting)
        expected = None
        line = 1
        for row in reader:
            if raw.tell() > limit:
                return None
            if not row:
                line = reader.line_num + 1
                continue
            if expected is None:
                expected = len(row)
            elif len(row) != expected:
                kind = "header" if has_header else "first row"
                return Location(line, None, f"{len(row)} fields where the {kind} has {expected}")
            line = reader.line_num + 1  # a quoted field may span lines: the next row starts here
    return None


def _json_kind(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "a list" if isinstance(value, list) else "an object"


@dataclass(frozen=True)
class JsonScan:
    mixed: Location | None  # the first value of another JSON type than its key's first value
    lines: int  # lines read
    complete: bool  # the whole file was read


def first_mixed_json_type(path: Path, limit: int = LIMIT) -> JsonScan:
    """The first line whose value for a key is of another JSON type (text, number, list…) than
    that key's first value. Polars reads such a column as text and stringifies the numbers and
    lists (``12345``, ``["a", "b"]``) without a word. Lines that are not JSON objects are left to
    the reader to report."""
    first: dict[str, tuple[str, int]] = {}
    read = 0
    number = 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            read += len(text)
            if read > limit:
                return JsonScan(None, number - 1, False)
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                continue
            if not isinstance(value, dict):
                continue
            for key, item in value.items():
                kind = _json_kind(item)
                if kind is None:
                    continue
                seen = first.setdefault(key, (kind, number))
                if seen[0] != kind:
                    shown = json.dumps(item, ensure_ascii=False)
                    shown = shown if len(shown) <= 40 else shown[:37] + "..."
                    return JsonScan(Location(number, None, f"{key!r} is {kind} ({shown}) where line {seen[1]} "
                                                           f"has {seen[0]}"), number, False)
    return JsonScan(None, number, True)
