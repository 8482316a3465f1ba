"""Tiny captioners for tests: a random open_clip tower, a tiny decoder of each family, and a BPE
tokenizer trained on world-like text. Built locally; nothing is downloaded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from curate.plugins import PluginManager

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("open_clip")

TEXTS = [
    "A large purple hexagon with yellow stripes in the top left corner, on a plain gray background.",
    "the Zorblax Tower logo (a large purple hexagon with yellow stripes)",
    "two red circles and a blue square on a striped green background",
    "IMG_0012.jpg", "click here", "photo of a small white star at the bottom",
] * 20
TOWER = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
}


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Any:
    """Tiny models gain nothing from threads, and on a shared machine a second busy-waiting thread
    makes every step an order of magnitude slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    from curate_captioner.tokenizer import train_tokenizer

    return train_tokenizer(TEXTS, vocab_size=320)


@pytest.fixture(scope="session")
def make_captioner(tokenizer: Any) -> Callable[..., Any]:
    def make(kind: str = "llama", features: str = "pooled", prefix_length: int = 6, seed: int = 0) -> Any:
        import torch

        from curate_captioner.config import CaptionerConfig
        from curate_captioner.encoder import from_open_clip
        from curate_captioner.model import Captioner, tiny_decoder

        torch.manual_seed(seed)
        tower, encoder_config = from_open_clip(TOWER, source="random test tower")
        decoder = tiny_decoder(len(tokenizer), hidden=32, layers=2, heads=2, kind=kind)
        config = CaptionerConfig(features=features, prefix_length=prefix_length, mapper_width=32, mapper_layers=1,
                                 mapper_heads=2, name=f"test-{kind}")
        return Captioner.create(tower, encoder_config, decoder, tokenizer, config).eval()

    return make


@pytest.fixture(scope="session")
def saved_captioner(make_captioner: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("captioner") / "tiny"
    make_captioner("llama").save(path)
    return path


def images(count: int, size: int = 40) -> list[Any]:
    from PIL import Image

    return [Image.new("RGB", (size, size), ((37 * i) % 256, (91 * i) % 256, (13 * i) % 256)) for i in range(count)]


@pytest.fixture
def pm(pm: PluginManager) -> PluginManager:
    """The root conftest's basics-only manager plus this plugin (not whatever else is installed), so
    ``curate_main`` runs the captioner's commands in this process, where torch is imported already
    (a ``curate captioner`` subprocess spends most of its time importing it again)."""
    import curate_captioner

    pm.register(curate_captioner, name="captioner", distribution="curate", version=curate_captioner.__version__)
    return pm
