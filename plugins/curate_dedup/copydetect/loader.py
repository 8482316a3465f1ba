"""Loading a copy-detection model, offline, in one of two forms:

- a model directory written by ``curate dedup train-copy-world`` (``config.json`` +
  ``model.safetensors``), or ``world-copy``: the one this project trains on the world and ships;
- a TorchScript file (``.pt``, ``.torchscript``), as SSCD publishes its models
  (``sscd_disc_mixup.torchscript.pt``), or a ``torch.export`` program (``.pt2``): a module from a
  normalized ``(B, 3, H, W)`` batch to ``(B, D)`` descriptors. ``image_size``, ``mean`` and ``std`` say how to prepare its input
  (SSCD: 288 px, ImageNet statistics, the defaults).

Anything else (a bare name, a URL) would have to be downloaded, and this machine is offline:
:func:`check` says so at plan time, with where to get the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.errors import CurateError
from curate.runfiles import not_regular, outside_working_directory
from curate_dedup.copydetect import directory

WEIGHTS_DIR = Path(__file__).parents[1] / "weights"
WORLD_COPY = "world-copy"
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".torchscript", ".jit")
EXPORT_SUFFIXES = (".pt2",)  # torch.export's ExportedProgram, TorchScript's successor
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class CopyModelError(CurateError):
    """A copy model file is not one curate loads (bad input: exit 2)."""

    exit_code = 2


SSCD_HINT = ("download a TorchScript copy-detection model on a connected machine (SSCD: "
             "https://github.com/facebookresearch/sscd-copy-detection, e.g. sscd_disc_mixup.torchscript.pt) "
             "and set `model:` to its path, or use the shipped 'world-copy'")


def resolve(model: str) -> Path:
    return WEIGHTS_DIR / WORLD_COPY if model == WORLD_COPY else Path(model).expanduser()


def named_files(model: str) -> list[str]:
    """What a model choice reads, as the spec names it: nothing of the spec's for the shipped model;
    a TorchScript file; a model directory and its config and weights (a link among them may point
    anywhere)."""
    if model == WORLD_COPY:
        return []
    inside = [f"{model}/{directory.CONFIG}", f"{model}/{directory.WEIGHTS}"] if resolve(model).is_dir() else []
    return [model, *inside]


def check(model: str, untrusted: bool = False) -> list[str]:
    """Plan-time problems with a model choice (nothing is imported or loaded). ``untrusted``: the
    spec is someone else's, so a model it names by path must lie inside the working directory."""
    path = resolve(model)
    if model == WORLD_COPY and not (path / "config.json").exists():
        return [f"the shipped world copy detector is missing ({path}); reinstall curate[dedup,clip]"]
    if untrusted and model != WORLD_COPY:
        outside = next(filter(None, map(outside_working_directory, named_files(model))), None)
        if outside:
            return [f"copy model {outside}"]
    if path.is_dir():
        return directory.directory_problems(path)
    if path.is_file():
        if untrusted and path.suffix in TORCHSCRIPT_SUFFIXES + EXPORT_SUFFIXES:
            # A program runs its own code: TorchScript's forward read /etc/passwd into the descriptors
            # (aten::from_file), and a torch.export graph may hold the same op.
            return [f"copy model {path} is a {'torch.export' if path.suffix in EXPORT_SUFFIXES else 'TorchScript'} "
                    "program, and loading it runs the code it holds: an untrusted spec may name only a model "
                    "directory (config.json + model.safetensors, as `curate dedup train-copy-world` writes) or "
                    "'world-copy'; review the model and run the spec without --untrusted to use it"]
        if path.suffix not in TORCHSCRIPT_SUFFIXES + EXPORT_SUFFIXES:
            return [f"copy model {path} is neither a model directory nor a TorchScript "
                    f"({', '.join(TORCHSCRIPT_SUFFIXES)}) or torch.export (.pt2) file"]
        from curate_dedup.copydetect.archives import export_problems, torchscript_problems

        return export_problems(path) if path.suffix in EXPORT_SUFFIXES else torchscript_problems(path)
    if os.path.lexists(path):  # a pipe, a device, a broken link: what it is, not "does not exist"
        return [f"copy model {path} {not_regular(path)}: give a model directory or a TorchScript or torch.export file"]
    if "://" in model or "/" not in model:
        return [f"copy model '{model}' is not a local file and would have to be downloaded, but this machine "
                f"is offline: {SSCD_HINT}"]
    return [f"copy model {path} does not exist"]


@dataclass(frozen=True)
class Preparer:
    """PIL image → the normalized (3, H, W) tensor a copy model takes. Small and picklable, so
    DataLoader workers get it without the model."""

    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, image: Any) -> Any:
        import numpy as np
        import torch
        from PIL import Image

        resized = image.convert("RGB").resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
        pixels = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return (pixels - torch.tensor(self.mean).view(3, 1, 1)) / torch.tensor(self.std).view(3, 1, 1)


@dataclass
class CopyModel:
    name: str  # recorded with the embeddings; decontaminate compares it
    module: Any
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    device: str
    threshold: float | None  # the cosine the model was calibrated to call copies, when it says

    def preparer(self) -> Preparer:
        return Preparer(self.image_size, self.mean, self.std)

    def embed(self, pixels: Any) -> Any:
        """A batch of prepared tensors → unit descriptors (float32 numpy)."""
        import torch

        with torch.inference_mode():
            features = self.module(pixels.to(self.device))
        return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()


def load(model: str, device: str = "cpu", *, image_size: int | None = None,
         mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
         untrusted: bool = False) -> CopyModel:
    problems = check(model, untrusted)
    if problems:
        raise CopyModelError(problems[0])
    import torch

    from curate.digests import file_digest
    from curate_dedup.copydetect import model as network

    path = resolve(model)
    if path.is_dir():
        try:
            module, config = network.load(path)
        except Exception as exc:  # safetensors raises SafetensorError, torch RuntimeError, json ValueError
            raise CopyModelError(f"copy model directory {path} cannot be loaded ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:200] if str(exc) else ''})",
                                 "write it again with `curate dedup train-copy-world --out DIR`") from None
        digest = file_digest(path / network.WEIGHTS)[:12]
        name = f"{config['architecture']}@{digest}"
        size, mean_, std_ = image_size or config["image_size"], mean or config["mean"], std or config["std"]
        threshold = config.get("threshold")
    else:
        module = _load_program(path)
        name = f"{'export' if path.suffix in EXPORT_SUFFIXES else 'torchscript'}@{file_digest(path)[:12]}"
        size, mean_, std_ = image_size or 288, mean or IMAGENET_MEAN, std or IMAGENET_STD
        threshold = None
    return CopyModel(name, module.to(device), int(size), tuple(mean_), tuple(std_), device, threshold)


def _load_program(path: Path):  # type: ignore[no-untyped-def]
    import logging
    import warnings

    import torch

    export_log = logging.getLogger("torch.export")
    level = export_log.level
    try:
        if path.suffix in EXPORT_SUFFIXES:
            # torch logs a traceback before it raises; the error below says it in one line
            export_log.setLevel(logging.ERROR)
            return torch.export.load(str(path)).module()
        with warnings.catch_warnings():
            # TorchScript is deprecated in favour of torch.export, but it is the format SSCD
            # publishes its models in; loading one is not the user's mistake.
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # zipfile.BadZipFile, AssertionError, torch's own: all a file it cannot read
        first = str(exc).splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        if "weights_only" in first:
            first = "it holds pickled objects"
        raise CopyModelError(f"copy model {path} is not a loadable TorchScript or torch.export file ({first})",
                             SSCD_HINT) from None
    finally:
        export_log.setLevel(level)
