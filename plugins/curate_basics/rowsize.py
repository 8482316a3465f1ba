"""Rows too long to read, found before the reader holds one in memory.

A CSV or JSON Lines reader holds a whole row: a stranger's file with one field of a gigabyte
(an image pasted into the table, a line that never ends) took 5.5 GB of memory to read and
failed in DuckDB with advice to raise its memory limit. Every row of a text file is checked
against a limit first, reading the file at memory speed and not decoding it:

- without a quote character (JSON Lines, TSV), a row is a line: one ``find`` of a newline per
  half limit of bytes proves every line shorter than the limit;
- with one (CSV), a newline ends a row only outside quotes, where the quotes before it are even
  in number (a doubled quote inside a quoted field counts twice). The quotes of each block of
  half the limit are counted, and the first row end of each block is found by counting from
  the block's start. A block with no row end is read exactly (``numpy``) from the last row
  start known, to measure the row around it.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_ROW_BYTES = 16 * 2**20
# Lines tried within a block before its row ends are found with numpy: a quoted field of many
# short lines would otherwise cost one find per line.
_LINES_TRIED = 64


@dataclass(frozen=True)
class LongRow:
    line: int  # the row's first line, from 1
    offset: int  # its first byte
    length: int  # bytes up to its end, or as far as was read (``complete`` False)
    complete: bool


def first_long_row(path: Path, limit: int, quote: str | None) -> LongRow | None:
    """The first row of ``path`` longer than ``limit`` bytes (its newline not counted), or None."""
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size <= limit:
            return None
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            found = _Scan(data, size, limit, quote.encode() if quote else None).first_long()
            if found is None:
                return None
            start, length, complete = found
            return LongRow(line_of(data, start), start, length, complete)


class _Scan:
    def __init__(self, data: mmap.mmap, size: int, limit: int, quote: bytes | None):
        self.data, self.size, self.limit, self.quote = data, size, limit, quote
        self.block = max(1, limit // 2)

    def first_long(self) -> tuple[int, int, bool] | None:
        start = 0  # a position known to start a row: the quotes before it are even in number
        begin, parity = 0, 0  # a block's start and the parity of the quotes before it
        # The rows of the last block start past the first row end of the block before it: under
        # two blocks (the limit) long.
        while begin + self.block < self.size:
            end = begin + self.block
            first = self._first_end(begin, end, parity)
            if first is not None:
                # Two first row ends of neighbouring blocks are under two blocks (the limit) apart.
                start = first + 1
                parity = (parity + self._quotes(begin, end)) & 1
                begin = end
                continue
            # A row spans the whole block: measure it, and the rows around it, exactly.
            stop = min(self.size, end + self.limit + 1)
            ends = self._row_ends(start, stop)
            starts = [start, *(ends + 1).tolist()]
            for row_start, row_end in zip(starts, ends.tolist(), strict=False):
                if row_end - row_start > self.limit:
                    return row_start, row_end - row_start, True
            last = int(ends[-1]) + 1 if len(ends) else start
            if stop - last > self.limit:
                return last, stop - last, stop == self.size
            if stop == self.size:
                return None
            start = begin = last  # past ``end``: the row around it ends within the limit
            parity = 0
        return None

    def _first_end(self, begin: int, end: int, parity: int) -> int | None:
        """The first row end in ``[begin, end)``, the quotes before ``begin`` of ``parity``."""
        position = begin
        for _ in range(_LINES_TRIED):
            newline = self.data.find(b"\n", position, end)
            if newline < 0:
                return None
            parity = (parity + self._quotes(position, newline)) & 1
            if parity == 0:
                return newline
            position = newline + 1
        ends = self._row_ends(position, end, parity)
        return int(ends[0]) if len(ends) else None

    def _quotes(self, begin: int, end: int) -> int:
        if self.quote is None or end <= begin:
            return 0
        if end - begin < 4096:
            return self.data[begin:end].count(self.quote)
        window = np.frombuffer(self.data, dtype=np.uint8, count=end - begin, offset=begin)
        try:
            return int(np.count_nonzero(window == self.quote[0]))  # 4x bytes.count of a copy
        finally:
            del window

    def _row_ends(self, begin: int, end: int, parity: int = 0) -> np.ndarray:
        """Every row end in ``[begin, end)``, as positions in the file."""
        window = np.frombuffer(self.data, dtype=np.uint8, count=end - begin, offset=begin)
        try:
            newlines = np.flatnonzero(window == ord("\n"))
            if self.quote is not None:
                quotes = np.flatnonzero(window == self.quote[0])
                newlines = newlines[((np.searchsorted(quotes, newlines) + parity) & 1) == 0]
            return newlines + begin
        finally:
            del window  # the mmap cannot close while a view of it lives


def line_of(data: mmap.mmap, offset: int) -> int:
    """The line, from 1, that byte ``offset`` of ``data`` lies on."""
    line, step = 1, 1 << 24
    for begin in range(0, offset, step):
        line += data[begin:min(offset, begin + step)].count(b"\n")
    return line
