"""The JSON header of a safetensors file, read without reading a tensor (plan-time checks of
model files from someone else: curate_clip's checkpoints, curate_captioner's directories)."""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path
from typing import Any

from curate.runfiles import NotRegularFile, describe_mode, json_value, open_regular

MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit on its JSON header
DTYPE_BITS = {"BOOL": 8, "U8": 8, "I8": 8, "F8_E4M3": 8, "F8_E5M2": 8, "F8_E8M0": 8, "I16": 16, "U16": 16,
              "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64,
              "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6}


class NotSafetensors(ValueError):
    """The file is not a whole safetensors file. The message says why as what follows the file's
    name ("is truncated or corrupt: …"), so callers write ``f"{path} {error}"``."""


def read_header(path: Path) -> tuple[dict[str, Any], int]:
    """(the header as a dict, the bytes of tensor data after it). The length prefix must fit both
    the file and safetensors' limit, and the header must be a JSON object. Only a regular file is
    read (a pipe would wait for a writer forever, /dev/zero never end)."""
    try:
        with open_regular(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(8)
            if len(head) < 8:
                raise NotSafetensors(f"is not a safetensors file: {size} bytes, shorter than a header")
            (length,) = struct.unpack("<Q", head)
            if length > min(MAX_HEADER_BYTES, size - 8):
                raise NotSafetensors(f"is not a safetensors file: its header claims {length:,} bytes of a "
                                     f"{size:,}-byte file")
            raw = handle.read(length)
    except NotRegularFile as error:
        raise NotSafetensors(f"is {describe_mode(error.mode)}, not a safetensors file") from None
    try:
        header = json_value(raw)
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise NotSafetensors("is not a safetensors file: its header is not a JSON object")
    return header, size - 8 - length


def tensor_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor name → shape, with the checks safetensors makes when it loads: every tensor has a
    dtype it knows, its bytes are its shape's size, and the tensors cover the data exactly, in order."""
    header, data = read_header(path)
    shapes, spans = {}, []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            shape = [int(n) for n in entry["shape"]]
            begin, end = (int(n) for n in entry["data_offsets"])
            dtype = str(entry["dtype"]).upper()
        except (TypeError, KeyError, ValueError, AttributeError):
            raise NotSafetensors(f"is not a safetensors file: tensor '{name}' has no dtype, shape and data "
                                 "offsets") from None
        if not 0 <= begin <= end <= data:
            raise NotSafetensors(f"is truncated or corrupt: tensor '{name}' lies at bytes {begin:,}–{end:,} of "
                                 f"{data:,} bytes of data")
        if dtype not in DTYPE_BITS:
            raise NotSafetensors(f"is corrupt: tensor '{name}' has dtype '{dtype}', which is not one safetensors "
                                 "knows")
        if any(n < 0 for n in shape) or math.prod(shape) * DTYPE_BITS[dtype] != 8 * (end - begin):
            raise NotSafetensors(f"is corrupt: tensor '{name}' of shape {shape} ({dtype}) has {end - begin:,} "
                                 "bytes of data, which is not that shape's size")
        shapes[name] = shape
        spans.append((begin, end, name))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise NotSafetensors(f"is corrupt: tensor '{name}' starts at byte {begin:,} of the data, where the "
                                 f"tensors before it end at {position:,}")
        position = end
    if position != data:
        raise NotSafetensors(f"is truncated or corrupt: its tensors cover {position:,} of its {data:,} bytes of data")
    return shapes
