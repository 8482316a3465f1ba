"""A module's weights as the safetensors file ``safetensors.torch.save_model`` writes, with the same
bytes every time (:mod:`curate.safetensors_write`: save_model's metadata went through a Rust
HashMap, whose order changed from one save to the next).

As save_model does, a tensor tied to another (the decoder's lm_head and embeddings) is stored once,
under the first of its names in sorted order, and the metadata names it for each other name, so
``safetensors.torch.load_model`` ties them again.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from curate.safetensors_write import RawTensor, write_safetensors

# torch's dtypes by safetensors' names (torch before 2.3 has no uint16/32/64: left out there).
DTYPE_NAMES = {getattr(torch, attr): name for attr, name in (
    ("float64", "F64"), ("float32", "F32"), ("float16", "F16"), ("bfloat16", "BF16"), ("int64", "I64"),
    ("int32", "I32"), ("int16", "I16"), ("int8", "I8"), ("uint8", "U8"), ("bool", "BOOL"),
    ("float8_e4m3fn", "F8_E4M3"), ("float8_e5m2", "F8_E5M2"), ("complex64", "C64"), ("uint64", "U64"),
    ("uint32", "U32"), ("uint16", "U16")) if hasattr(torch, attr)}


def raw(tensor: torch.Tensor, byteorder: str = sys.byteorder) -> RawTensor:
    """A CPU copy's bytes, little-endian as safetensors wants them (a view of the tensor's own
    bytes when it is on the CPU, contiguous, and the host is little-endian; ``byteorder`` is the
    host's, as :data:`sys.byteorder` names it: on a big-endian host each element's bytes are
    reversed, as safetensors' own writer does there)."""
    if tensor.dtype not in DTYPE_NAMES:
        raise ValueError(f"a {tensor.dtype} tensor has no safetensors dtype this writer knows; "
                         f"convert it to one of {', '.join(map(str, DTYPE_NAMES))}")
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    data = flat.view(torch.uint8).numpy()
    # a complex number is two floats, each of them swapped on its own
    width = tensor.element_size() // (2 if tensor.dtype.is_complex else 1)
    if byteorder == "big" and width > 1:
        data = little_endian(data, width)
    return RawTensor(DTYPE_NAMES[tensor.dtype], tuple(tensor.shape), data)


def little_endian(data: np.ndarray, width: int) -> np.ndarray:
    """``data``'s bytes with the bytes of each ``width``-byte number reversed (a new array)."""
    return np.ascontiguousarray(data.reshape(-1, width)[:, ::-1]).reshape(-1)


def _same_view(tensor: torch.Tensor) -> tuple[object, ...] | None:
    """What two names of one tied tensor share (None: a tensor without storage, never tied)."""
    if tensor.device.type == "meta" or tensor.untyped_storage().data_ptr() == 0:
        return None
    return (tensor.device, tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
            tensor.stride(), tensor.dtype)


def save_module(module: nn.Module, path: Path, metadata: dict[str, str]) -> Path:
    """``module``'s state dict to ``path``, each tied tensor once (see the module docstring)."""
    state, metadata = module.state_dict(), dict(metadata)
    first: dict[object, str] = {}
    tied: set[str] = set()
    for name in sorted(state):
        view = _same_view(state[name])
        if view is None:
            continue
        if view in first:
            tied.add(name)
            metadata.setdefault(name, first[view])  # as save_model: never over the caller's own entry
        else:
            first[view] = name
    return write_safetensors(path, {name: raw(t) for name, t in state.items() if name not in tied}, metadata)
