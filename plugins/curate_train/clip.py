"""Train a CLIP from scratch with the real client, ``open_clip_train.main``, on WebDataset shards
written by the ``webdataset`` sink.

Models: ``world`` is the world CLIP's open_clip config from curate_clip (``world-clip-tiny``, 64 px,
4+3 layers of width 128), trained from scratch; ``tiny`` is this package's ``curate_train_tiny.json``
(32 px, 2+2 layers of width 64), for CPUs shared by many (a step of the world config took ~20 s on
the 2 loaded cores this was written on)."""

from __future__ import annotations

import json
from pathlib import Path

TINY_CONFIG = Path(__file__).with_name("curate_train_tiny.json")
TINY_MODEL = "curate-train-tiny"


def model_config(model: str = "tiny") -> tuple[str, Path]:
    """(open_clip model name, config file) for ``tiny`` or ``world`` (curate_clip's config)."""
    if model == "world":
        from curate_clip.models import CONFIG_DIR, WORLD_MODEL

        return WORLD_MODEL, CONFIG_DIR / f"{WORLD_MODEL}.json"
    if model != "tiny":
        raise ValueError(f"model is 'tiny' or 'world', got {model!r}")
    return TINY_MODEL, TINY_CONFIG


def register_model(name: str, config: Path) -> None:
    """Make ``name`` known to open_clip (it looks configs up by file stem in a registry)."""
    import open_clip
    from open_clip.factory import _MODEL_CONFIGS

    if name not in _MODEL_CONFIGS:
        _MODEL_CONFIGS[name] = json.loads(config.read_text())
    assert name in open_clip.list_models()


def shard_pattern(shards: Path) -> tuple[str, int]:
    """open_clip's brace pattern over a webdataset sink's tars, and the sample count."""
    sizes = json.loads((shards / "sizes.json").read_text())
    names = sorted(sizes)
    if not names:
        raise ValueError(f"{shards} holds no shards")
    return str(shards / f"{{{names[0][:-4]}..{names[-1][:-4]}}}.tar"), int(sum(sizes.values()))


def train_clip(shards: Path, out: Path, *, name: str = "clip", epochs: int = 1, batch_size: int = 64,
               lr: float = 2e-3, warmup: int = 20, seed: int = 0, workers: int = 1, model: str = "tiny",
               threads: int | None = 1) -> Path:
    """Train with ``open_clip_train.main``; returns the final checkpoint. ``epochs`` passes over the
    shards (a sink with ``repeats: E`` already holds E unrolled epochs: pass ``epochs=1``)."""
    import open_clip_train.main
    import torch

    if threads:  # on a loaded shared CPU, 2 threads ran a step ~7x slower than 1
        torch.set_num_threads(threads)
    model, config = model_config(model)
    register_model(model, config)
    pattern, samples = shard_pattern(shards)
    out.mkdir(parents=True, exist_ok=True)
    args = [
        "--train-data", pattern, "--train-num-samples", str(samples), "--dataset-type", "webdataset",
        "--model", model, "--epochs", str(epochs), "--batch-size", str(batch_size), "--lr", str(lr),
        "--wd", "0.1", "--warmup", str(warmup), "--workers", str(workers), "--seed", str(seed),
        "--precision", "fp32", "--logs", str(out), "--name", name, "--save-frequency", str(epochs),
        "--zeroshot-frequency", "0", "--val-frequency", "0", "--report-to", "", "--log-every-n-steps", "20",
    ]
    open_clip_train.main.main(args)
    checkpoint = out / name / "checkpoints" / f"epoch_{epochs}.pt"
    if not checkpoint.is_file():
        raise RuntimeError(f"open_clip_train finished without {checkpoint}")
    return checkpoint


def load_clip(checkpoint: Path, model: str = "tiny"):  # -> (model, preprocess, tokenizer)
    import open_clip

    model_name, config = model_config(model)
    register_model(model_name, config)
    network, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=str(checkpoint))
    network.eval()
    return network, preprocess, open_clip.get_tokenizer(model_name)
