"""The JSON header of a safetensors file, read without reading a tensor (plan-time checks of
model files from someone else: curate_clip's checkpoints, curate_captioner's directories)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit on its JSON header


class NotSafetensors(ValueError):
    """The file is not a whole safetensors file; the message says why, without the file's name."""


def read_header(path: Path) -> tuple[dict[str, Any], int]:
    """(the header as a dict, the bytes of tensor data after it). The length prefix must fit both
    the file and safetensors' limit, and the header must be a JSON object."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise NotSafetensors(f"{size} bytes, shorter than a header")
        (length,) = struct.unpack("<Q", head)
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise NotSafetensors(f"its header claims {length:,} bytes of a {size:,}-byte file")
        raw = handle.read(length)
    try:
        header = json.loads(raw)
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise NotSafetensors("its header is not a JSON object")
    return header, size - 8 - length
