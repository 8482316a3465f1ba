"""Write a safetensors file whose bytes depend on its tensors and metadata alone.

safetensors' own writer keeps ``__metadata__`` in a Rust HashMap, whose order changes from one
save to the next (within one process too): the same weights saved twice made different files.
This writer lays the file out as safetensors does (an 8-byte little-endian header length, a
compact JSON header padded with spaces to a multiple of 8 bytes, then the tensors' bytes in the
header's offset order: wider dtypes first, then by name) and lists the metadata by sorted key.
Without metadata, or with one key, its bytes are safetensors' own. Never imports torch: callers
hand in each tensor's raw bytes (:class:`RawTensor`).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.atomic import atomic_path
from curate.safetensors_header import DTYPE_BITS

# safetensors' Dtype enum, widest first: the order its writer lays tensors out in (ties by name).
DATA_ORDER = ("U64", "I64", "F64", "C64", "F32", "U32", "I32", "BF16", "F16", "U16", "I16", "F8_E4M3",
              "F8_E5M2", "I8", "U8", "BOOL")
METADATA_KEY = "__metadata__"


@dataclass(frozen=True)
class RawTensor:
    """One tensor as the file holds it: safetensors' dtype name (``F32``, ``BF16``…), its shape,
    and its elements' bytes, C order, little-endian (anything with the buffer protocol)."""

    dtype: str
    shape: tuple[int, ...]
    data: Any

    def nbytes(self) -> int:
        return memoryview(self.data).nbytes


def _checked(name: str, tensor: RawTensor) -> int:
    if name == METADATA_KEY:
        raise ValueError(f"a tensor cannot be named '{METADATA_KEY}': safetensors keeps that key for the metadata")
    if tensor.dtype not in DATA_ORDER:
        raise ValueError(f"tensor '{name}' has dtype '{tensor.dtype}', which this writer does not lay out; "
                         f"known: {', '.join(DATA_ORDER)}")
    size = tensor.nbytes()
    if any(n < 0 for n in tensor.shape) or math.prod(tensor.shape) * DTYPE_BITS[tensor.dtype] != 8 * size:
        raise ValueError(f"tensor '{name}' of shape {list(tensor.shape)} ({tensor.dtype}) has {size:,} bytes, "
                         "which is not that shape's size")
    return size


def layout(tensors: Mapping[str, RawTensor], metadata: Mapping[str, str] | None = None) -> tuple[bytes, list[str]]:
    """(the file's first bytes: length prefix and padded header, the tensor names in data order)."""
    rank = {dtype: position for position, dtype in enumerate(DATA_ORDER)}
    names = sorted(tensors, key=lambda name: (rank.get(tensors[name].dtype, -1), name))
    header: dict[str, Any] = {}
    if metadata is not None:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ValueError("safetensors metadata maps text to text")
        header[METADATA_KEY] = dict(sorted(metadata.items()))
    offset = 0
    for name in names:
        size = _checked(name, tensors[name])
        header[name] = {"dtype": tensors[name].dtype, "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text, names


def write_safetensors(path: Path | str, tensors: Mapping[str, RawTensor],
                      metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``tensors`` (and ``metadata``) to ``path`` whole or not at all; returns ``path``."""
    head, names = layout(tensors, metadata)
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(head)
        for name in names:
            handle.write(tensors[name].data)
    return path
