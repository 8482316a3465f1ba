"""Lone surrogate escapes in JSON text, found in the block checks' bytes without a second parse.

``"\\ud800"`` names half of a UTF-16 surrogate pair: ``\\ud83d\\ude00`` together are one character
(U+1F600), but a half alone (or the halves in the other order) is no Unicode character, and no
UTF-8 text holds it. Polars read a lone high half as ``"\\x00"`` without a word (the row's url or
alt-text changed), and failed on a lone low half without saying where. The scans of a JSON Lines
file hand each block of lines to :meth:`LoneSurrogates.check`, as they hand it to
``curate_basics.jsonkeys.RepeatedKeys``:

- the block's bytes are searched, by one regular expression, for a ``\\uD800``-``\\uDBFF`` not
  followed by a ``\\uDC00``-``\\uDFFF``, and for one of those not right after one of these:
  most blocks hold none (a search in C, which skips every pair);
- what it finds is kept if its backslash starts an escape (the first, third… of a run of
  backslashes: ``"\\\\ud800"`` is a backslash and the text ud800) and it is half of no pair,
  as ``json`` pairs them;
- the line holding the first one kept is settled by what it parsed to: the text (key or value)
  holding it, which the message names.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

CHUNK = 1 << 22  # bytes of a block looked at at once, in whole lines (a longer line whole)
_HEX = rb"[0-9a-fA-F]"
# A \uD800-\uDBFF not followed by a \uDC00-\uDFFF, or one of those not right after a \uD800-\uDBFF
# whose backslash follows another character than a backslash (that one starts an escape, and
# pairs with it). Every lone half is among what it finds; what is no escape ("\\ud800", a
# backslash then ud800) or pairs with one whose backslash follows two ("\\\ud800\udc00") is
# among them too, and left out by ``_lone``.
_CANDIDATE = re.compile(rb"\\u[dD](?:[89abAB]" + _HEX * 2 + rb"(?!\\u[dD][c-fC-F])"
                        rb"|(?<![^\\]\\u[dD][89abAB]" + _HEX * 2 + rb"\\u[dD])[c-fC-F]" + _HEX * 2 + rb")")
_HIGH = re.compile(rb"\\u[dD][89abAB]" + _HEX * 2)
HINT = ("fix or remove that text: \\uD800-\\uDBFF must be followed by \\uDC00-\\uDFFF, together one "
        "character (\\ud83d\\ude00 is U+1F600); alone, or in the other order, they are none, and the reader "
        "would change the text without a word (did a writer cut a text between the two?)")


@dataclass(frozen=True)
class LoneSurrogate:
    escape: str  # as written in the file: \ud800
    column: int  # 1-based, in characters
    where: str  # the text holding it: "the key 'k\\ud800'", "the value of 'alt_text'", "the text at $.m[0]"

    def render(self) -> str:
        return (f"{self.escape} in {self.where} is half of a UTF-16 surrogate pair, alone: "
                "no Unicode character")


class LoneSurrogates:
    """Lone surrogate escapes in the lines of the file open as ``handle`` (binary), from byte
    ``start``, line ``first_line``: the reader hands :meth:`check` what each line of a block
    parsed to, in order, a block at a time (as ``RepeatedKeys`` takes them)."""

    def __init__(self, handle: object, start: int = 0, first_line: int = 1):
        self.fd = handle.fileno()  # type: ignore[attr-defined]
        self.start, self.line = start, first_line

    def check(self, values: list[dict | None], end: int,
              data: bytes | None = None) -> tuple[int, LoneSurrogate] | None:
        """(line, escape) of the first lone surrogate escape in the next ``len(values)`` lines,
        which end at byte ``end`` and parsed to ``values`` (None: no JSON object); ``data``:
        their bytes, where the caller has read them."""
        start, first = self.start, self.line
        self.start, self.line = end, first + len(values)
        pieces = _pieces(self.fd, start, end) if data is None else [(start, data)]
        for begin, data in pieces:
            match = _CANDIDATE.search(data)
            if match is None:  # nearly every block: one search in C
                continue
            line, counted = first + _newlines(self.fd, start, begin), 0  # the line of data's byte `counted`
            while match is not None:
                at = match.start()
                if not _lone(data, at):
                    match = _CANDIDATE.search(data, at + 1)
                    continue
                line_start = data.rfind(b"\n", 0, at) + 1
                line, counted = line + data.count(b"\n", counted, line_start), line_start
                value = values[line - first] if line - first < len(values) else None
                if value is not None and (where := _holder(value)) is not None:
                    column = len(data[line_start:at].decode("utf-8", "replace")) + 1
                    return line, LoneSurrogate(match.group().decode("ascii"), column, where)
                next_line = data.find(b"\n", at) + 1  # no JSON object: the reader's to report
                match = _CANDIDATE.search(data, next_line) if next_line else None
        return None


def _lone(data: bytes, at: int) -> bool:
    """Whether the candidate at ``at`` is an escape and half of no pair: its backslash starts an
    escape, and, a low half, the high half before it (if any) is no escape."""
    if not _starts_escape(data, at):
        return False
    low = (data[at + 3] | 0x20) >= ord("c")  # c-f, either case
    if not low or at < 6 or _HIGH.fullmatch(data, at - 6, at) is None:
        return True
    return not _starts_escape(data, at - 6)


def _starts_escape(data: bytes, at: int) -> bool:
    """The backslash at ``at`` follows an even number of backslashes: it starts an escape."""
    before = at
    while before and data[before - 1] == ord("\\"):
        before -= 1
    return (at - before) % 2 == 0


def _newlines(fd: int, start: int, end: int) -> int:
    """The line breaks in ``[start, end)`` of the file."""
    count = 0
    for begin in range(start, end, CHUNK):
        count += os.pread(fd, min(CHUNK, end - begin), begin).count(b"\n")
    return count


def _pieces(fd: int, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """``[start, end)`` of the file (whole lines) in pieces of whole lines of about ``CHUNK``
    bytes each (a longer line whole: the reader holds it whole too)."""
    begin = start
    while begin < end:
        data = os.pread(fd, min(CHUNK, end - begin), begin)
        while begin + len(data) < end and data.rfind(b"\n", len(data) - CHUNK) < 0:
            more = os.pread(fd, min(CHUNK, end - begin - len(data)), begin + len(data))
            if not more:
                break
            data += more
        if not data:
            return
        if begin + len(data) < end and (cut := data.rfind(b"\n")) >= 0:
            data = data[: cut + 1]
        yield begin, data
        begin += len(data)


def _holder(value: dict) -> str | None:
    """Which text of ``value`` is the first holding a surrogate, in the order written, or None."""
    # (item, its path, its key when it is the value of a key of the line's own object, whether it is a key)
    stack: list[tuple[object, str, str | None, bool]] = [(value, "$", None, False)]
    while stack:
        item, path, top, is_key = stack.pop()
        if type(item) is dict:
            entries = []
            for key, inner in item.items():
                entries.append((key, path, None, True))
                entries.append((inner, f"{path}{_step(key)}", key if path == "$" else None, False))
            stack.extend(reversed(entries))
        elif type(item) is list:
            stack.extend(reversed([(v, f"{path}[{i}]", None, False) for i, v in enumerate(item)]))
        elif type(item) is str and _has_surrogate(item):
            if is_key:
                return f"the key {_ascii(item)}" + (f" of the object at {path}" if path != "$" else "")
            return f"the value of {_ascii(top)}" if top is not None else f"the text at {path}"
    return None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _ascii(text: str) -> str:
    return "'" + json.dumps(text)[1:-1].replace("'", "\\'") + "'"


def _step(key: str) -> str:
    return f".{key}" if key.isidentifier() else f"[{json.dumps(key)}]"
