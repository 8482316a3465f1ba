"""Find where a text source file is broken, when the reader only says that it is.

Polars reports "invalid utf-8 sequence", "found more fields than defined in 'Schema'" or
"Syntax at character 0" without a line. These scans read the file once more, streaming and
bounded (``limit`` bytes), to name the first bad line, so the fix is one editor jump away.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from curate_basics.csvfields import MAX_BLANK_LINES
from curate_basics.jsonkeys import HINT as REPEATED_KEY_HINT
from curate_basics.jsonkeys import BLOCK_BYTES, BLOCK_LINES, RepeatedKeys
from curate_basics.jsonsurrogates import HINT as LONE_SURROGATE_HINT
from curate_basics.jsonsurrogates import LoneSurrogates

LIMIT = 512 * 1024 * 1024  # bytes scanned at most; a 10 GB file is not re-read to word an error
SHARED_BYTES = 1 << 22  # a block of lines up to this size is read once for the block checks
BLANK_HINT = "remove them (grep -v '^[[:space:]]*$' FILE > FILE.new), then run again"


def too_many_blank(line: int) -> Location:
    """A JSON Lines file with more than ``MAX_BLANK_LINES`` blank lines, as a CSV's is refused: the
    reader skips them, but each costs the scans a line's work (10 KB of zstd hold 10 GB of them)."""
    return Location(line, None, f"the file holds more than {MAX_BLANK_LINES:,} blank lines", BLANK_HINT)


@dataclass(frozen=True)
class Location:
    line: int  # 1-based
    column: int | None  # 1-based; bytes for UTF-8 errors, characters otherwise
    what: str
    hint: str | None = None  # how to fix it, where the caller's own hint does not say

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
            except RecursionError:
                return Location(number, None, "lists or objects nested too deep to read (about 1,000 levels)")
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
    # the first value of another JSON type than its key's first value, or the first key written
    # twice in one object (curate_basics.jsonkeys) or lone surrogate escape (curate_basics.jsonsurrogates;
    # these Locations have a hint)
    mixed: Location | None
    lines: int  # lines read
    complete: bool  # the whole file was read
    offset: int  # bytes read: where the lines past the scan start
    # key -> (value, line): the first whole number a float cannot hold exactly, in the scan (a
    # float column that holds it rounds it, wherever its fractions are)
    inexact: dict[str, tuple[object, int]] = field(default_factory=dict)


def first_mixed_json_type(path: Path, limit: int = LIMIT) -> JsonScan:
    """The first line whose value for a key is of another JSON type (text, number, list…) than
    that key's first value. Polars reads such a column as text and stringifies the numbers and
    lists (``12345``, ``["a", "b"]``) without a word. Lines that are not JSON objects are left to
    the reader to report. ``limit`` counts bytes: the whole lines within it are read, the same
    lines a copy of the file's first ``limit`` bytes holds. A key written twice in one object is
    said first (curate_basics.jsonkeys): the reader keeps one of its values, and which one a type
    was read from is not known; so is a lone surrogate escape (curate_basics.jsonsurrogates),
    which the reader changes. A line that is not UTF-8 ends the scan, said unless a line before
    it is."""
    first: dict[str, tuple[str, int]] = {}
    # A key holding both a fraction and a whole number no float holds exactly (past 2^53) is
    # read as floats, that number rounded (9007199254740993 became 9007199254740992.0).
    fraction: dict[str, tuple[object, int]] = {}
    inexact: dict[str, tuple[object, int]] = {}
    read = 0
    number = blank = 0
    with open(path, "rb") as handle:  # lines end at b"\n" only, as the reader splits them
        blocks, parsed = _BlockChecks(handle), []
        # at most one byte past the limit a line: iterating the file read a line of a gigabyte whole
        while raw := handle.readline(limit - read + 1):
            number += 1
            if read + len(raw) > limit:
                found = blocks.check(parsed, read)
                return JsonScan(found, number - 1, False, read, {} if found else inexact)
            read += len(raw)
            value = _json_object(raw)
            if type(value) is UnicodeDecodeError:
                bad = _not_utf8(number, read - len(raw), raw, value)
                found = blocks.check([*parsed, None], read)
                found = found if found is not None and found.line < number else bad
                return JsonScan(found, number, False, read)
            parsed.append(value)
            if value is None and raw.isspace():
                blank += 1
                if blank > MAX_BLANK_LINES:
                    return JsonScan(blocks.check(parsed, read) or too_many_blank(number), number, False, read)
            if len(parsed) == BLOCK_LINES:
                if (found := blocks.check(parsed, read)) is not None:
                    return JsonScan(found, number, False, read)
                parsed = []
            if value is None:
                continue
            for key, item in value.items():
                kind = _json_kind(item)
                if kind is None:
                    continue
                seen = first.setdefault(key, (kind, number))
                if seen[0] != kind:
                    problem = (f"{key!r} is {kind} ({_shown(item)}) where line {seen[1]} has {seen[0]}: "
                               "the reader would turn its values into text")
                    found = blocks.check(parsed, read) or Location(number, None, problem)
                    return JsonScan(found, number, False, read)
                if type(item) is float:
                    fraction.setdefault(key, (item, number))
                elif type(item) is int and not exact_as_float(item):
                    inexact.setdefault(key, (item, number))
                if key in fraction and key in inexact:
                    (whole, at), (other, line) = inexact[key], fraction[key]
                    problem = (f"{key!r} is {_shown(whole)} on line {at}, a whole number a float cannot hold "
                               f"exactly, and {_shown(other)} on line {line}: the reader would read them as floats "
                               "and round the first")
                    found = blocks.check(parsed, read) or Location(number, None, problem)
                    return JsonScan(found, number, False, read)
        found = blocks.check(parsed, read)
    return JsonScan(found, number, True, read, {} if found else inexact)


class _BlockChecks:
    """What is checked of a block of lines against its bytes, from byte ``start``, line
    ``first_line`` of the file open as ``handle``: keys written twice in one object
    (curate_basics.jsonkeys) and lone surrogate escapes (curate_basics.jsonsurrogates)."""

    def __init__(self, handle: object, start: int = 0, first_line: int = 1):
        self.fd, self.start = handle.fileno(), start  # type: ignore[attr-defined]
        self.repeats = RepeatedKeys(handle, start, first_line)
        self.surrogates = LoneSurrogates(handle, start, first_line)

    def check(self, values: list[dict | None], end: int) -> Location | None:
        """The first line among the next ``len(values)`` lines (ending at byte ``end``, parsed to
        ``values``) with either problem, or None. A block of up to ``SHARED_BYTES`` is read once
        for both; a larger one (long lines) each reads in pieces."""
        start, self.start = self.start, end
        data = os.pread(self.fd, end - start, start) if end - start <= SHARED_BYTES else None
        found = []
        if (lone := self.surrogates.check(values, end, data)) is not None:
            line, surrogate = lone
            found.append(Location(line, surrogate.column, surrogate.render(), LONE_SURROGATE_HINT))
        if (repeated := self.repeats.check(values, end, data)) is not None:
            line, key = repeated
            found.append(Location(line, None, key.render(), REPEATED_KEY_HINT))
        return min(found, key=lambda location: location.line, default=None)


def exact_as_float(number: int) -> bool:
    """A float holds ``number`` exactly (every whole number up to 2^53, some past it)."""
    try:
        return int(float(number)) == number
    except OverflowError:  # past a float's range
        return False


def first_value_past_scan(path: Path, columns: dict[str, pl.DataType], scanned: JsonScan,
                          scanned_bytes: int) -> Location | None:
    """The first line past ``scanned`` (the first ``scanned_bytes`` of the file, from which its
    ``columns`` were read) with a value the reader would lose or change: a key not among the
    columns (dropped without a word), a value of another JSON type than its column's (turned
    into text), a fraction or an out-of-range number in a column of whole numbers, a value in a
    column that was null throughout; a key written twice in one object (curate_basics.jsonkeys)
    or a lone surrogate escape (curate_basics.jsonsurrogates), said first; bytes that are not
    UTF-8. Reads the rest of the file: it is read next anyway, and this is what it costs (a set
    lookup per value, the message only for the line found)."""
    where = f"the first {size_text(scanned_bytes)}"
    accepted = {name: _accepted_types(dtype) for name, dtype in columns.items()}
    bounds = {name: _INTEGER_BOUNDS[dtype] for name, dtype in columns.items() if dtype in _INTEGER_BOUNDS}
    with open(path, "rb") as handle:
        handle.seek(scanned.offset)
        blocks, number = _BlockChecks(handle, scanned.offset, scanned.lines + 1), scanned.lines
        blank = 0  # the scan's blank lines are not counted: at most twice the limit in all
        while block := handle.readlines(BLOCK_BYTES):
            parsed, first = list(map(_json_object, block)), number + 1
            for number, value in enumerate(parsed, start=first):
                if value is None:
                    continue
                if type(value) is UnicodeDecodeError:
                    index = number - first
                    line_start = handle.tell() - sum(map(len, block[index:]))
                    bad = _not_utf8(number, line_start, block[index], value)
                    found = blocks.check(_objects(parsed), handle.tell())
                    return found if found is not None and found.line < number else bad
                for key, item in value.items():
                    if type(item) in accepted.get(key, _NULL_ONLY) and (key not in bounds or type(item) is not int
                                                                        or bounds[key][0] <= item <= bounds[key][1]) \
                            and (type(item) is not int or key in bounds or exact_as_float(item)):
                        continue
                    found = blocks.check(_objects(parsed), handle.tell())
                    if found is not None and found.line <= number:
                        return found
                    return Location(number, None, _past_scan_problem(key, item, columns, where))
            if (found := blocks.check(parsed, handle.tell())) is not None:
                return found
            blank += sum(map(bytes.isspace, block))
            if blank > MAX_BLANK_LINES:
                return too_many_blank(number)
    return None


def _past_scan_problem(key: str, item: object, columns: dict[str, pl.DataType], where: str) -> str:
    if key not in columns:
        return f"key {key!r} ({_shown(item)}) is on no line of {where}, from which the file's columns were read"
    kind, dtype = _json_kind(item), columns[key]
    if dtype == pl.Null:
        return f"{key!r} is {kind} ({_shown(item)}) but null on every line of {where}, from which its type was read"
    if dtype in _INTEGER_BOUNDS and kind == "a number":
        return f"{key!r} is {_shown(item)}, not a whole number within {dtype}, where {where} have only such numbers"
    if dtype.is_float() and type(item) is int:
        return (f"{key!r} is {_shown(item)}, a whole number a float cannot hold exactly, where {where} have "
                f"fractions: the reader would round it")
    return f"{key!r} is {kind} ({_shown(item)}) where {where} have {_column_kind(dtype)}"


# Whole-number columns a JSON reader infers, with the values they hold.
_INTEGER_BOUNDS = {pl.Int64: (-(2**63), 2**63 - 1), pl.UInt64: (0, 2**64 - 1)}
_NULL_ONLY = frozenset({type(None)})
_KIND_TYPES = {"a boolean": {bool}, "a number": {int, float}, "a list": {list}, "an object": {dict}, "text": {str}}


def _column_kind(dtype: pl.DataType) -> str | None:
    """The JSON type of a column's values; None for a column of nulls."""
    if dtype == pl.Null:
        return None
    if dtype == pl.Boolean:
        return "a boolean"
    if dtype.is_numeric():
        return "a number"
    if isinstance(dtype, (pl.List, pl.Array)):
        return "a list"
    if isinstance(dtype, pl.Struct):
        return "an object"
    return "text"


def _accepted_types(dtype: pl.DataType) -> frozenset[type]:
    """The Python types of the JSON values the reader reads into a column as they are."""
    kind = _column_kind(dtype)
    if kind is None:
        return _NULL_ONLY
    return _NULL_ONLY | ({int} if dtype in _INTEGER_BOUNDS else _KIND_TYPES[kind])


def _json_object(raw: bytes) -> dict | UnicodeDecodeError | None:
    """The JSON object the line ``raw`` holds; None for no JSON object; the error for bytes that
    are not UTF-8 (which the reader refuses, line or no line)."""
    if raw.isspace():  # a blank line, which the reader skips: json.loads' error cost 5 us a line
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):  # nested past Python's stack: the reader's to report
        return None
    return value if isinstance(value, dict) else None


def _objects(parsed: list) -> list[dict | None]:
    """``parsed`` (what ``_json_object`` gave) as the block checks take it: objects or None."""
    return [None if type(value) is UnicodeDecodeError else value for value in parsed]


def _not_utf8(number: int, line_start: int, raw: bytes, error: UnicodeDecodeError) -> Location:
    """Line ``number`` (starting at byte ``line_start``, holding ``raw``) is not UTF-8, as
    ``first_bad_utf8`` says it: the column in bytes."""
    byte, offset = raw[error.start], line_start + error.start
    return Location(number, error.start + 1, f"byte 0x{byte:02x} (offset {offset}) is not valid UTF-8",
                    "save the file as UTF-8")


def _shown(value: object) -> str:
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def size_text(count: int) -> str:
    """``33554432`` → ``32 MiB``; a count that is no whole number of MiB in bytes."""
    return f"{count / 2**20:g} MiB" if count % 2**20 == 0 else f"{count} bytes"
