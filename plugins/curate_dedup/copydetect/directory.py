"""What a copy model directory (``config.json`` + ``model.safetensors``) must be before torch
builds anything from it, read from the two files alone (plan time: nothing is imported or built).

A directory may come with a spec from someone else. ``config.json`` is read as a regular file of
at most :data:`MAX_CONFIG_BYTES` (a pipe there made the run wait forever; a link to /dev/zero took
14 GB), its fields are checked for type and size (channels of 100,000 asked torch for 360 GB),
and the safetensors header must hold exactly the tensors, of exactly the shapes, that the config
builds (the header is read, never a tensor): what loading would refuse after building the network
is refused at ``curate validate``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from curate.embeddings import MAX_DIM
from curate.runfiles import not_regular, read_json
from curate.safetensors_header import NotSafetensors, tensor_shapes

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
ARCHITECTURE = "curate-copy-cnn"
MAX_CONFIG_BYTES = 1 << 20  # a config is a few hundred bytes, with its training record a few kB
MAX_IMAGE_SIZE = 1024
MAX_CHANNELS = 4096
MAX_PARAMETERS = 1_000_000_000  # 4 GB of float32 weights; world-copy has 0.6 M
MAX_ACTIVATIONS = 1 << 26  # feature-map values per image (256 MB); world-copy: 0.2 M
CONVS = (0, 3, 6, 10, 14)  # indices in CopyNet.features (model.build): each conv is followed by its BatchNorm
HINT = "write the directory with `curate dedup train-copy-world --out DIR`"


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _numbers(value: Any, positive: bool = False) -> bool:
    return (isinstance(value, list) and len(value) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    and (v > 0 or not positive) for v in value))


def config_problems(config: Any, where: str) -> list[str]:
    """What is wrong with a parsed ``config.json`` (``where`` names it in the messages)."""
    if not isinstance(config, dict):
        return [f"{where} is a JSON {type(config).__name__}, not an object; {HINT}"]
    if config.get("architecture") != ARCHITECTURE:
        return [f"{where}: architecture is {config.get('architecture')!r}, not {ARCHITECTURE!r} (the only one "
                f"curate builds); a TorchScript or torch.export file loads other networks"]
    problems = []
    size, channels, dim = config.get("image_size"), config.get("channels"), config.get("dim")
    if not (_whole(size, 8, MAX_IMAGE_SIZE) and size % 8 == 0):
        problems.append(f"{where}: image_size is {size!r}, not a multiple of 8 from 8 to {MAX_IMAGE_SIZE:,} "
                        "(the network halves it three times)")
    if not (isinstance(channels, list) and len(channels) == 5 and all(_whole(c, 1, MAX_CHANNELS) for c in channels)):
        problems.append(f"{where}: channels is {channels!r}, not 5 whole numbers from 1 to {MAX_CHANNELS:,}")
    if not _whole(dim, 1, MAX_DIM):
        problems.append(f"{where}: dim is {dim!r}, not a whole number from 1 to {MAX_DIM:,}")
    for name, positive in (("mean", False), ("std", True)):
        if not _numbers(config.get(name), positive):
            problems.append(f"{where}: {name} is {config.get(name)!r}, not 3 finite{' positive' if positive else ''} "
                            "numbers (one per colour channel)")
    threshold = config.get("threshold")
    if threshold is not None and not (isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
                                      and -1 <= threshold <= 1):
        problems.append(f"{where}: threshold is {threshold!r}, not a cosine from -1 to 1")
    if problems:
        return problems
    shapes = expected_shapes(config)
    parameters = sum(math.prod(shape) for shape in shapes.values())
    c1, c2, c3, c4, c5 = channels
    activations = size * size * (c1 + (c2 + c3) / 4 + c4 / 16 + c5 / 64)
    if parameters > MAX_PARAMETERS:
        problems.append(f"{where} describes a network of {parameters:,} parameters, more than the "
                        f"{MAX_PARAMETERS:,} a copy model may have")
    if activations > MAX_ACTIVATIONS:
        problems.append(f"{where} describes a network with {int(activations):,} feature values per image, more "
                        f"than the {MAX_ACTIVATIONS:,} a copy model may have (lower image_size or channels)")
    return problems


def expected_shapes(config: dict[str, Any]) -> dict[str, list[int]]:
    """The state dict that :func:`curate_dedup.copydetect.model.build` makes for ``config``."""
    channels = config["channels"]
    shapes: dict[str, list[int]] = {}
    for index, (cin, cout) in zip(CONVS, zip([3, *channels[:-1]], channels)):
        shapes[f"features.{index}.weight"] = [cout, cin, 3, 3]
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"features.{index + 1}.{name}"] = [cout]
        shapes[f"features.{index + 1}.num_batches_tracked"] = []
    side = config["image_size"] // 8
    shapes["head.weight"] = [config["dim"], channels[-1] * side * side]
    shapes["head.bias"] = [config["dim"]]
    return shapes


def read_config(directory: Path) -> Any:
    """``config.json`` of ``directory``, parsed (``OSError``, ``ValueError`` for what is not)."""
    return read_json(directory / CONFIG, MAX_CONFIG_BYTES)


def directory_problems(directory: Path) -> list[str]:
    """Why ``directory`` is not a copy model curate builds and loads (empty: it is one)."""
    problems = []
    for name in (CONFIG, WEIGHTS):
        why = not_regular(directory / name)
        if why:
            problems.append(f"copy model directory {directory}: {name} {why}")
    if problems:
        return [*problems[:-1], f"{problems[-1]}; {HINT}"]
    where = str(directory / CONFIG)
    try:
        config = read_config(directory)
    except UnicodeDecodeError:
        return [f"{where} is not UTF-8 JSON; {HINT}"]
    except (OSError, ValueError) as error:
        return [f"{where} is not readable JSON ({str(error).splitlines()[0][:200]}); {HINT}"]
    problems = config_problems(config, where)
    if problems:
        return problems
    weights = directory / WEIGHTS
    try:
        shapes = tensor_shapes(weights)
    except NotSafetensors as error:
        return [f"{weights} {error}; {HINT}"]
    expected = expected_shapes(config)
    missing = sorted(set(expected) - set(shapes))
    extra = sorted(set(shapes) - set(expected))
    wrong = sorted(name for name in set(expected) & set(shapes) if shapes[name] != expected[name])
    if missing or extra or wrong:
        said = ([f"missing {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}"] if missing else []) + \
               ([f"unexpected {', '.join(extra[:3])}{' …' if len(extra) > 3 else ''}"] if extra else []) + \
               [f"{name} is {shapes[name]}, config.json makes {expected[name]}" for name in wrong[:3]]
        return [f"{weights} does not hold the network {where} describes: {'; '.join(said)}; {HINT}"]
    return []
