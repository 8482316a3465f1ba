"""``Captioner.save`` writes the same bytes for the same captioner, in every process (the shipped
world captioner, saved by another process, is the file saved again here).

It called ``safetensors.torch.save_model`` with metadata (``format`` and the tied embeddings' name),
which safetensors keeps in a Rust HashMap: the header listed the two keys in an order that changed
from one save to the next, so a training rerun made a different file from the same tensors. Now the
header lists them by sorted key (curate.safetensors_write), and the world captioner saved again is
its shipped file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

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
