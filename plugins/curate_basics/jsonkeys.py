"""Keys written twice in one JSON object, found without parsing every line twice.

Polars read ``{"url": "http://a/1.jpg", "alt_text": "x", "url": "http://evil/2.jpg"}`` as its
first url and dropped the second without a word (Python's ``json`` keeps the last), in nested
objects too, and ``"u\\u0072l"`` is the same key "url". The scans of a JSON Lines file parse each
line already (``curate_basics.locate``); what they parse is checked here a block of lines at a
time, against the block's bytes:

- every key written is followed by its colon, and that colon comes right after the key's closing
  quote, or after whitespace that comes after it or after more whitespace. A quote right before a
  colon that follows a single backslash is escaped, inside a string (one that ends a string
  follows an even number: ``"a\\\\":``). The colons so placed are at least as many as the keys
  written, each key having its own;
- the parsed objects hold one key per distinct key written, so where a block's colons number no
  more than its lines' top-level keys, no line holds a key twice, nested or not;
- otherwise the lines whose own count is larger are looked at: their nested keys counted, and
  where that does not settle it, the line parsed again with every key kept (``object_pairs_hook``).

A typical line (a flat object) is settled by its block's count, in numpy over the bytes; a line
with nested objects costs a walk over what it parsed to, and one whose text holds a colon after
a quote or a space, a second parse.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

BLOCK_LINES = 4096  # lines a reader that reads a line at a time checks at once
BLOCK_BYTES = 1 << 20  # bytes of lines a reader that reads blocks of lines reads at once
CHUNK = 1 << 22  # bytes of a block looked at at once (a block of long lines is looked at in parts)
_QUOTE, _BACKSLASH, _COLON = ord('"'), ord("\\"), ord(":")
_SPACES = (ord(" "), ord("\t"), ord("\r"), ord("\n"))
_LOOKBACK = 3  # bytes before a colon its rule looks at
HINT = ("remove one of the two from that line, keeping the value meant: a key may appear once in an object, "
        "and the reader keeps one of its values and drops the other without a word")


@dataclass(frozen=True)
class RepeatedKey:
    key: str
    where: str  # the object holding it: "" for the line's own, else its path ("$.m[0]")
    first: object
    second: object

    def render(self) -> str:
        inside = f" in the object at {self.where}" if self.where else ""
        return f"key {self.key!r} appears twice{inside}: {_shown(self.first)}, then {_shown(self.second)}"


class RepeatedKeys:
    """Keys written twice in the lines of the file open as ``handle`` (binary), from byte
    ``start``, line ``first_line``: the reader hands :meth:`check` what each line of a block
    parsed to, in order, a block at a time."""

    def __init__(self, handle: object, start: int = 0, first_line: int = 1):
        self.fd = handle.fileno()  # type: ignore[attr-defined]
        self.start, self.line = start, first_line

    def check(self, values: list[dict | None], end: int,
              data: bytes | None = None) -> tuple[int, RepeatedKey] | None:
        """(line, key) of the first key written twice in the next ``len(values)`` lines, which
        end at byte ``end`` and parsed to ``values`` (None: no JSON object); ``data``: their
        bytes, where the caller has read them (``curate_basics.locate`` reads a block once for
        both its checks)."""
        start, first = self.start, self.line
        self.start, self.line = end, first + len(values)
        colons = self._find(start, end, _key_colons, _LOOKBACK, data)
        if len(colons) <= sum(map(len, filter(None, values))):
            return None
        ends = self._find(start, end, lambda window, _: np.flatnonzero(window == ord("\n")), 0, data)
        per_line = np.bincount(np.searchsorted(ends, colons), minlength=len(values))
        keys = np.fromiter((len(v) if v is not None else 0 for v in values), np.int64, len(values))
        for index in np.flatnonzero(per_line[:len(values)] > keys).tolist():
            value = values[index]
            if value is None or per_line[index] <= key_count(value):
                continue
            begin = start if index == 0 else int(ends[index - 1]) + 1
            stop = int(ends[index]) if index < len(ends) else end
            found = repeated_key(os.pread(self.fd, stop - begin, begin))
            if found is not None:
                return first + index, found
        return None

    def _find(self, start: int, end: int, find, lookback: int = 0, data: bytes | None = None) -> np.ndarray:
        """``find(window, skip)`` over ``[start, end)`` of the file a chunk at a time, as positions
        in the file; each window starts ``skip`` bytes before its chunk (up to ``lookback``), bytes
        ``find`` may look back at but does not search. ``data``: the bytes of ``[start, end)``,
        one window (a block starts a line, and no colon in a line's first bytes ends a key)."""
        if data is not None:
            return find(np.frombuffer(data, dtype=np.uint8), 0) + start
        found = []
        for begin in range(start, end, CHUNK):
            skip = min(lookback, begin)
            data = os.pread(self.fd, min(CHUNK, end - begin) + skip, begin - skip)
            window = np.frombuffer(data, dtype=np.uint8)
            positions = find(window, skip)
            found.append(positions[positions >= skip] - skip + begin)
        return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def _key_colons(window: np.ndarray, skip: int) -> np.ndarray:
    """Positions in ``window`` of the colons that may end a key: right after a quote no single
    backslash escapes, or after whitespace after a quote or after more whitespace. The first
    three bytes of a file end no key (``{"":`` is the shortest), nor ``window``'s first ``skip``."""
    colons = np.flatnonzero(window == _COLON)
    colons = colons[colons >= max(skip, _LOOKBACK)]
    one, two, three = window[colons - 1], window[colons - 2], window[colons - 3]
    escaped = (two == _BACKSLASH) & (three != _BACKSLASH)
    keep = ((one == _QUOTE) & ~escaped) | (np.isin(one, _SPACES) & ((two == _QUOTE) | np.isin(two, _SPACES)))
    return colons[keep]


def key_count(value: object) -> int:
    """The keys of every object in ``value``, nested ones included."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            count += len(item)
            stack.extend(v for v in item.values() if type(v) in (dict, list))
        elif type(item) is list:
            stack.extend(v for v in item if type(v) in (dict, list))
    return count


def repeated_key(raw: bytes) -> RepeatedKey | None:
    """The first key written twice in one object of the JSON text ``raw`` (the outermost such
    object, then the first such key in it); None when there is none or ``raw`` is no JSON."""
    # id of the object -> (the object, kept so that its id is not another's, key, values)
    repeats: dict[int, tuple[dict, str, object, object]] = {}

    def pairs(items: list[tuple[str, object]]) -> dict:
        value = dict(items)
        if len(value) < len(items):
            seen: dict[str, object] = {}
            for key, item in items:
                if key in seen:
                    repeats.setdefault(id(value), (value, key, seen[key], item))
                    break
                seen[key] = item
        return value

    try:
        parsed = json.loads(raw.decode("utf-8", errors="replace"), object_pairs_hook=pairs)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not repeats:
        return None
    # the objects kept, outermost first: one inside a value that was dropped is not among them
    # but the object that dropped it is
    queue: list[tuple[object, str]] = [(parsed, "")]
    for item, where in queue:
        if type(item) is dict:
            if id(item) in repeats:
                _, key, first, second = repeats[id(item)]
                return RepeatedKey(key, where, first, second)
            queue.extend((v, f"{where or '$'}{_step(k)}") for k, v in item.items())
        elif type(item) is list:
            queue.extend((v, f"{where or '$'}[{i}]") for i, v in enumerate(item))
    return None  # unreachable: the outermost object holding a repeat is kept


def _step(key: str) -> str:
    return f".{key}" if key.isidentifier() else f"[{json.dumps(key, ensure_ascii=False)}]"


def _shown(value: object) -> str:
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= 40 else shown[:37] + "..."
