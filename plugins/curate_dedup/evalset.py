"""An eval set to decontaminate against, as (item names, unit embeddings).

Three forms, told apart by what the path is:

- an embedding store directory (``meta.json`` + shards, as ``clip_score`` writes): used as is;
- a Parquet file with an ``image_path`` column (paths relative to the file), like a world's
  ``eval.parquet``: the images are embedded with the model of the training embeddings;
- a directory of image files (jpg, jpeg, png, webp, gif, bmp): embedded the same way, named by file.

Images are embedded by the model of the training embeddings: the CLIP of ``clip_score`` (needs the
CLIP plugin, ``curate_clip``) or the copy detector of ``copy_embed``. The result is stored in the
step's artifacts so the run keeps what it compared against. What is on disk is found and checked
first, as ``curate validate`` checks it (:mod:`curate_dedup.evalfiles`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curate.embeddings import EmbeddingStore
from curate.errors import CurateError, pip_install
from curate.runfiles import real_folders
from curate_dedup.evalfiles import IMAGE_SUFFIXES, locate, read_image

__all__ = ["IMAGE_SUFFIXES", "EvalSet", "embed_images", "eval_digest", "files_digest", "load_eval_set"]


@dataclass
class EvalSet:
    names: list[str]
    vectors: np.ndarray  # float16, unit rows
    model: str | None
    kind: str  # store, parquet or images


def load_eval_set(path: str, *, model: dict[str, Any], path_column: str, id_column: str | None,
                  cache: Path, device: str, batch_size: int, untrusted: bool = False) -> EvalSet:
    files = locate(path, path_column, id_column, untrusted)
    if files.store is not None:
        uids, vectors = files.store.load_all(dtype=np.float16)
        return EvalSet([str(u) for u in uids], vectors, files.store.meta().get("model"), "store")
    within = real_folders([os.getcwd()]) if untrusted else None
    vectors = _embed_cached(files.images, files.names, model, cache, device, batch_size, within)
    return EvalSet(files.names, vectors, model.get("model"), files.kind)


def eval_digest(path: Path) -> str | None:
    """A cheap fingerprint of an eval set on disk: every file's relative name, size and mtime."""
    if not path.exists():
        return None
    if path.is_file():
        return _stat_digest([path], lambda file: file.name)
    return _stat_digest(sorted(p for p in path.rglob("*") if p.is_file()), lambda file: file.relative_to(path))


def files_digest(files: list[Path]) -> str:
    """A cheap fingerprint of files named by a list: each one's path, size and mtime, in order."""
    return _stat_digest(files, str)


def _stat_digest(files: list[Path], name: Any) -> str:
    """sha256 over each file's ``name(file)``, size and mtime, one line each (16 hex digits)."""
    import hashlib

    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(f"{name(file)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _embed_cached(images: list[Path], names: list[str], model: dict[str, Any], cache: Path, device: str,
                  batch_size: int, within: tuple[Path, ...] | None = None) -> np.ndarray:
    store = EmbeddingStore(cache, "eval")
    if store.exists() and store.meta().get("model") == model.get("model") and list(store.uids()) == names:
        return store.load_all(dtype=np.float16)[1]
    vectors = embed_images(images, model, device, batch_size, within=within)
    store.write_meta(vectors.shape[1], str(model.get("model")))
    store.write_shard(0, names, vectors)
    return store.load_all(dtype=np.float16)[1]


def embed_images(images: list[Path], model: dict[str, Any], device: str, batch_size: int,
                 within: tuple[Path, ...] | None = None) -> np.ndarray:
    if model.get("kind") == "copy":
        return _embed_copy(images, model, device, batch_size, within)
    return _embed_clip(images, model, device, batch_size, within)


def _embed_copy(images: list[Path], model: dict[str, Any], device: str, batch_size: int,
                within: tuple[Path, ...] | None) -> np.ndarray:
    """Descriptors from the copy_embed model that made the training embeddings, loaded from the
    source and with the input size and normalization it recorded."""
    import torch

    from curate_dedup.copydetect import loader

    source = str(model.get("source") or "")
    mean, std = model.get("mean"), model.get("std")
    copy = loader.load(source, "cuda" if device == "gpu" else "cpu", image_size=model.get("image_size"),
                       mean=tuple(mean) if mean else None, std=tuple(std) if std else None,
                       untrusted=within is not None)
    if copy.name != model.get("model"):
        raise CurateError(f"the training embeddings are from '{model.get('model')}', but '{source}' now loads "
                          f"'{copy.name}' (its weights changed)", "rerun copy_embed, or restore those weights")
    prepare = copy.preparer()
    out = [copy.embed(torch.stack([read_image(p, prepare, within) for p in images[start:start + batch_size]]))
           for start in range(0, len(images), batch_size)]
    return np.concatenate(out)


def _embed_clip(images: list[Path], model: dict[str, Any], device: str, batch_size: int,
                within: tuple[Path, ...] | None) -> np.ndarray:
    """Image embeddings from the CLIP model that made the training embeddings, so both sides are
    comparable. clip_score records the model as ``<architecture>@<weights file name>``; the
    shipped world CLIP is found by that name, other weights need ``checkpoint`` (the path)."""
    try:
        from curate_clip.api import WORLD_CHECKPOINT, load_clip
    except ImportError:
        raise CurateError(
            f"embedding eval images needs the CLIP plugin (model '{model.get('model')}'), which is not installed",
            f"{pip_install('clip')}, or give the eval set as an embedding store directory") from None
    import torch

    name = str(model.get("model") or "")
    architecture, _, weights = name.partition("@")
    checkpoint = model.get("checkpoint")
    if not checkpoint and weights != WORLD_CHECKPOINT.name:
        raise CurateError(f"the training embeddings come from '{name}'; which weights file is that?",
                          "set the step's clip_checkpoint to the checkpoint clip_score used")
    clip = load_clip(architecture, None, checkpoint, "cuda" if device == "gpu" else "cpu")
    if clip.name != name:
        raise CurateError(f"clip_checkpoint loads '{clip.name}', but the training embeddings are from '{name}'")
    out = []
    for start in range(0, len(images), batch_size):
        batch = [read_image(path, clip.preprocess, within) for path in images[start:start + batch_size]]
        with torch.no_grad():
            features = clip.model.encode_image(torch.stack(batch).to(clip.device))
        out.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy())
    return np.concatenate(out)
