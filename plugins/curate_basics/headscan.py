"""A JSON Lines file read through a copy (decompressed, or without its byte order mark) is type-scanned once.

Validation reads the file's schema from a copy of its first lines (the head); the run reads a copy
of the whole text. Both are scanned for values of mixed types (``locate.first_mixed_json_type``)
over their first ``limit`` bytes, and the two copies are different files: a 271 MB ``.jsonl.zst``
was scanned twice, 1.3 CPU s each. The head's scan stands for the whole copy's when the file is
the one the head was cut from (its size, modification and change times, as a source's
fingerprint says) and the scan of the whole copy would read the same lines: the head is the
whole text, or the head's scan read all of it and the whole copy's next line ends past ``limit``
(read from the copy: a byte order mark moved where the head was cut). Else the copy is scanned.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from curate_basics.locate import JsonScan


@dataclasses.dataclass(frozen=True)
class Head:
    file: tuple[int, int, int]  # the file's size, mtime and ctime (ns) before the head was copied
    size: int  # bytes of the head
    scan: JsonScan  # the head's scan, which found no problem


def carried(head: Head, file: tuple[int, int, int], copy: Path, limit: int) -> JsonScan | None:
    """What scanning ``copy`` (the whole text of the file ``head`` was cut from, whose stat is now
    ``file``) over its first ``limit`` bytes returns, from ``head``'s scan; None when it may differ."""
    if file != head.file:
        return None
    size = copy.stat().st_size
    if size == head.size:  # a prefix of the text as long as it: the same lines
        return head.scan
    if not head.scan.complete or head.size > limit or size <= limit:
        return None
    with open(copy, "rb") as text:  # the line after the head must end past the limit, as the scan stops there
        text.seek(head.size)
        if b"\n" in text.read(limit - head.size):
            return None
    return dataclasses.replace(head.scan, complete=False)
