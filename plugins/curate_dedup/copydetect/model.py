"""The world copy detector: a small CNN whose descriptor keeps *where* things are.

Convolutions with max pooling absorb a pixel or two of jitter; the head flattens the 8 × 8 map
instead of pooling it globally, so "a star on the left" and "a star in the center" get different
descriptors (a global pool, as in classification nets, would make them the same).

Saved as a directory: ``config.json`` (architecture, input size, normalization, the cosine
threshold it was calibrated for) and ``model.safetensors``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
ARCHITECTURE = "curate-copy-cnn"


def default_config() -> dict[str, Any]:
    return {"architecture": ARCHITECTURE, "image_size": 64, "channels": [24, 32, 48, 64, 64],
            "dim": 128, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}


def build(config: dict[str, Any]):  # type: ignore[no-untyped-def]
    import torch
    from torch import nn

    c1, c2, c3, c4, c5 = config["channels"]
    side = config["image_size"] // 8

    def block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    class CopyNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                *block(3, c1), *block(c1, c2, stride=2),          # 64 → 32
                *block(c2, c3), nn.MaxPool2d(2),                   # 32 → 16
                *block(c3, c4), nn.MaxPool2d(2),                   # 16 → 8
                *block(c4, c5),
            )
            self.head = nn.Linear(c5 * side * side, config["dim"])

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            features = self.features(images).flatten(1)
            return nn.functional.normalize(self.head(features), dim=-1)

    return CopyNet()


def save(model, config: dict[str, Any], out_dir: str | Path) -> Path:  # type: ignore[no-untyped-def]
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS))
    (out / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return out


def load(model_dir: str | Path):  # type: ignore[no-untyped-def]
    """(model in eval mode, config) from a directory written by :func:`save`."""
    from safetensors.torch import load_file

    path = Path(model_dir)
    config = json.loads((path / CONFIG).read_text())
    if config.get("architecture") != ARCHITECTURE:
        raise ValueError(f"{path / CONFIG}: architecture {config.get('architecture')!r}, expected {ARCHITECTURE!r}")
    model = build(config)
    model.load_state_dict(load_file(str(path / WEIGHTS)))
    return model.eval(), config
