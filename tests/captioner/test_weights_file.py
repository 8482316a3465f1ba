"""``Captioner.save`` writes the same bytes for the same captioner, in every process (the shipped
world captioner, saved by another process, is the file saved again here).

It called ``safetensors.torch.save_model`` with metadata (``format`` and the tied embeddings' name),
which safetensors keeps in a Rust HashMap: the header listed the two keys in an order that changed
from one save to the next, so a training rerun made a different file from the same tensors. Now the
header lists them by sorted key (curate.safetensors_write), and the world captioner saved again is
its shipped file. So is its ``captioner.json``: the shipped one had been edited by hand (a record
added out of key order), so the folder saved again differed in that file alone.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from curate.safetensors_header import read_header, tensor_shapes
from curate_captioner.config import WEIGHTS_FILE, WORLD_MODEL_DIR

COPIES = 8  # before, 8 saves agreed on the metadata's order once in 128 runs; the shipped file is another process's


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_the_same_captioner_saved_again_is_the_same_file_as_shipped(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from curate_captioner.model import Captioner

    captioner = Captioner.load("world")
    for copy in range(COPIES):
        captioner.save(tmp_path / str(copy))
    folders = sorted(tmp_path.iterdir())
    assert len(folders) == COPIES
    for folder in folders:  # every file of the directory, weights and configs
        assert digests(folder) == digests(folders[0]), folder
    weights = folders[0] / WEIGHTS_FILE
    assert weights.read_bytes() == (WORLD_MODEL_DIR / WEIGHTS_FILE).read_bytes()
    shipped = digests(WORLD_MODEL_DIR)  # and every other file: the shipped folder is what save writes
    assert {name: shipped.get(name) for name in digests(folders[0])} == digests(folders[0])
    header, _ = read_header(weights)
    assert header["__metadata__"] == {"decoder.model.embed_tokens.weight": "decoder.lm_head.weight", "format": "pt"}
    shapes = tensor_shapes(weights)  # curate's own check, as at plan time
    tensors = load_file(weights)  # and safetensors' loader
    assert {name: list(t.shape) for name, t in tensors.items()} == shapes
    world, again = Captioner.load("world"), Captioner.load(folders[0])
    assert again.decoder.lm_head.weight is again.decoder.model.embed_tokens.weight  # tied again on load
    expected = world.state_dict()
    assert all(torch.equal(tensor, expected[name]) for name, tensor in again.state_dict().items())


def test_a_module_is_saved_as_safetensors_save_model_saves_it(tmp_path: Path) -> None:
    """Tied weights once, under the first name, named in the metadata; bf16 and integer tensors
    laid out where safetensors lays them; ``load_model`` reads the file and ties them again."""
    import torch
    from safetensors.torch import load_model, save_model
    from torch import nn

    from curate_captioner.weightsfile import save_module

    def make() -> nn.Module:
        torch.manual_seed(3)
        module = nn.Module()
        module.embed = nn.Embedding(11, 6)
        module.head = nn.Linear(6, 11, bias=False)
        module.head.weight = module.embed.weight  # tied, as a decoder's lm_head
        module.half = nn.Linear(4, 3).to(torch.bfloat16)
        module.register_buffer("steps", torch.arange(5))
        return module

    module = make()
    ours = save_module(module, tmp_path / "ours.safetensors", {"format": "pt"})
    save_model(module, str(tmp_path / "theirs.safetensors"), metadata={"format": "pt"})
    (ours_header, ours_data), (their_header, their_data) = (read_header(p) for p in (
        ours, tmp_path / "theirs.safetensors"))
    assert ours_header == their_header and ours_data == their_data  # the same entries, in some order
    assert ours_header["__metadata__"] == {"format": "pt", "head.weight": "embed.weight"}
    assert ours.read_bytes()[-ours_data:] == (tmp_path / "theirs.safetensors").read_bytes()[-their_data:]
    loaded = make()
    with torch.no_grad():
        for parameter in loaded.parameters():
            parameter.zero_()
    assert load_model(loaded, str(ours)) == (set(), [])
    assert loaded.head.weight is loaded.embed.weight
    assert all(torch.equal(t, module.state_dict()[name]) for name, t in loaded.state_dict().items())


WIDE_DTYPES = ("float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "complex64", "uint8", "bool")


@settings(max_examples=40)
@given(dtype=st.sampled_from(WIDE_DTYPES), shape=st.lists(st.integers(0, 4), max_size=3), seed=st.integers(0, 2**16))
def test_a_big_endian_hosts_bytes_are_written_little_endian(dtype: str, shape: list[int], seed: int) -> None:
    """On a big-endian host a tensor's memory holds each number's bytes the other way round; the
    file must hold them little-endian, as safetensors' own writer writes them there. Here (a
    little-endian host) ``byteorder="big"`` reads the tensor's bytes as such a host's: what comes
    out is each number in big-endian order, numpy's ``>`` dtype, and reading back the same way
    gives the tensor's own bytes."""
    import numpy as np
    import torch

    from curate_captioner.weightsfile import little_endian, raw

    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(tuple(shape), generator=generator, dtype=torch.float64) * 100
    tensor = (values > 0) if dtype == "bool" else values.to(getattr(torch, dtype))
    here, there = raw(tensor), raw(tensor, byteorder="big")
    assert (here.dtype, here.shape) == (there.dtype, there.shape)
    if dtype == "bfloat16":  # numpy has no bfloat16: its bits as int16 swap the same way
        expected = tensor.view(torch.int16).numpy().astype(">i2").tobytes()
    else:
        array = tensor.numpy()
        expected = array.astype(array.dtype.newbyteorder(">")).tobytes()
    assert bytes(there.data) == expected
    width = tensor.element_size() // (2 if tensor.dtype.is_complex else 1)
    assert bytes(little_endian(np.frombuffer(expected, dtype=np.uint8), width)) == bytes(here.data)
