"""curate.safetensors_write: safetensors' own layout, byte for byte where safetensors' bytes do not
depend on a HashMap's order (no metadata, one key), and the metadata by sorted key where they do."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from curate.safetensors_header import read_header, tensor_shapes
from curate.safetensors_write import RawTensor, write_safetensors

safetensors_numpy = pytest.importorskip("safetensors.numpy")

NAMES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
         "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_, "U64": np.uint64, "U32": np.uint32,
         "U16": np.uint16, "C64": np.complex64}
SHAPES = [(3,), (2, 3), (), (0, 4), (1, 1, 5)]


def arrays() -> dict[str, np.ndarray]:
    """Every dtype numpy and safetensors share, with names that do not sort as the dtypes do."""
    rng = np.random.default_rng(7)
    out = {}
    for position, (dtype_name, dtype) in enumerate(NAMES.items()):
        shape = SHAPES[position % len(SHAPES)]
        out[f"{chr(ord('z') - position)}.{dtype_name.lower()}"] = np.asarray(rng.random(shape) * 100).astype(dtype)
    out["a.f32"] = rng.random((2, 2)).astype(np.float32)  # ties within a dtype go by name
    return out


def raw(values: dict[str, np.ndarray]) -> dict[str, RawTensor]:
    dtypes = {np.dtype(v): k for k, v in NAMES.items()}
    return {name: RawTensor(dtypes[a.dtype], a.shape, a.tobytes()) for name, a in values.items()}


@pytest.mark.parametrize("metadata", [None, {"format": "pt"}], ids=["none", "one_key"])
def test_the_file_is_safetensors_own_bytes(tmp_path, metadata):
    values = arrays()
    ours = write_safetensors(tmp_path / "ours.safetensors", raw(values), metadata).read_bytes()
    assert ours == safetensors_numpy.save(values, metadata=metadata)


def test_metadata_is_listed_by_sorted_key_and_the_file_loads(tmp_path):
    from safetensors import safe_open

    values = arrays()
    metadata = {key: f"value {key}" for key in ("zeta", "a.weight", "format", "m", "b.bias", "ünïcode")}
    path = write_safetensors(tmp_path / "model.safetensors", raw(values), metadata)
    assert path.read_bytes() == write_safetensors(tmp_path / "again.safetensors", raw(values), dict(
        reversed(metadata.items()))).read_bytes()
    header, data = read_header(path)
    assert list(header["__metadata__"]) == sorted(metadata)
    (length,) = struct.unpack("<Q", path.read_bytes()[:8])
    assert length % 8 == 0 and json.loads(path.read_bytes()[8:8 + length]) == header
    assert tensor_shapes(path) == {name: list(a.shape) for name, a in values.items()}  # curate's own check
    loaded = safetensors_numpy.load_file(path)
    assert set(loaded) == set(values) and all(np.array_equal(loaded[n], values[n]) for n in values)
    with safe_open(path, "np") as handle:
        assert handle.metadata() == metadata
    assert data == sum(a.nbytes for a in values.values())


@pytest.mark.parametrize("tensors, says", [
    ({"a": RawTensor("F32", (3,), b"\0" * 8)}, "tensor 'a' of shape [3] (F32) has 8 bytes"),
    ({"a": RawTensor("F4", (2,), b"\0")}, "tensor 'a' has dtype 'F4', which this writer does not lay out"),
    ({"__metadata__": RawTensor("U8", (1,), b"\0")}, "cannot be named '__metadata__'"),
])
def test_a_tensor_the_file_cannot_hold_is_refused_before_a_byte_is_written(tmp_path, tensors, says):
    with pytest.raises(ValueError, match=says.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        write_safetensors(tmp_path / "model.safetensors", tensors)
    assert list(tmp_path.iterdir()) == []
