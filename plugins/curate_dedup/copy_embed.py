"""``copy_embed``: a copy-detection descriptor per image, stored for dedup and decontamination.

CLIP embeddings say what a picture shows; near-duplicate removal needs to know whether two
pictures are *the same picture* (re-uploaded, resized, recompressed), which a CLIP is trained to
ignore. This step runs a copy-detection model (the shipped ``world-copy``, or a TorchScript
model such as SSCD) over the images and writes unit descriptors to the step's embedding store
(``copy`` by default). ``dedup_semantic`` and ``decontaminate`` use them with
``embedding: copy``. The table passes through unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from pydantic import Field

from curate.digests import file_digest
from curate.embeddings import EmbeddingStore
from curate.images import ImageFolders
from curate.params import Params
from curate.runfiles import outside_working_directory
from curate.schema import UID, Image, Schema
from curate.step import Step, StepContext
from curate_dedup.copydetect import loader

UNTRACKED = {"fingerprint": False}


class CopyEmbedParams(Params):
    model: str = Field(loader.WORLD_COPY, description="'world-copy' (shipped), a model directory, or a "
                       "TorchScript file such as SSCD's")
    image_size: int | None = Field(None, gt=0, le=4096, description="input side (default: the model's; "
                                   "TorchScript: 288, as SSCD)")
    mean: tuple[float, float, float] | None = Field(None, description="input normalization (TorchScript: ImageNet)")
    std: tuple[float, float, float] | None = None
    embedding: str = Field("copy", min_length=1, description="name of the embedding store to write")
    image_column: str = "image"
    batch_size: int = Field(256, gt=0, le=65536, json_schema_extra=UNTRACKED)
    workers: int = Field(0, ge=0, le=64, description="DataLoader processes decoding images", json_schema_extra=UNTRACKED)
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1…", json_schema_extra=UNTRACKED)

    def places(self) -> list[tuple[str, str]]:
        return [("model", path) for path in loader.named_files(self.model)]


class _Images:
    """row index → (prepared tensor, has image); zeros where the image is missing or unreadable, or
    lies outside ``within`` (an untrusted spec's ``ctx.image_folders``: then it is not read)."""

    def __init__(self, refs: list[Any], store_dir: str | None, prepare: loader.Preparer,
                 within: ImageFolders | None = None):
        self.refs, self.store_dir, self.prepare, self.within = refs, store_dir, prepare, within

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, index: int) -> tuple[Any, bool]:
        import torch

        from curate.images import ImageNotFound, decode_rgb, read_image_bytes

        image = None
        if self.refs[index] is not None:
            try:
                data = read_image_bytes(self.refs[index], self.store_dir, within=self.within)
            except (ImageNotFound, OSError, ValueError):
                data = None
            image = decode_rgb(data) if data else None  # as every step sees it; None: not an image
        if image is None:
            return torch.zeros(3, self.prepare.image_size, self.prepare.image_size), False
        return self.prepare(image), True


class CopyEmbed(Step):
    name = "copy_embed"
    # 2: images decoded by curate.images.decode_rgb (EXIF orientation followed, transparency on white,
    # 16-bit samples at 8 bits), so a run made before, which saw them sideways, on black or white, is
    # not reused (nor this one by an older curate)
    version = "2"
    description = "copy-detection descriptors per image (world-copy or SSCD), stored for near-duplicate dedup"
    requires = ("torch", "safetensors", "PIL")
    extra = "copy"
    uses_model = True
    Params = CopyEmbedParams

    def input_columns(self) -> Schema:
        return {UID: pl.Utf8, self.params.image_column: Image}

    def plan_check(self, input_schema: Schema) -> list[str]:
        problems = loader.check(self.params.model, self.untrusted)
        path = loader.resolve(self.params.model)
        if not problems and path.is_dir() and self.params.image_size is not None:
            from curate_dedup.copydetect.directory import read_config

            trained = read_config(path).get("image_size")
            if trained is not None and self.params.image_size != trained:
                # The head flattens a fixed-size feature map: another input size cannot run.
                problems.append(f"copy model {self.params.model} takes {trained} px images, image_size is "
                                f"{self.params.image_size}: leave image_size unset for a model directory")
        return problems

    def fingerprint_extra(self) -> dict[str, Any]:
        if self.untrusted and self.params.model != loader.WORLD_COPY and outside_working_directory(self.params.model):
            return {"weights": None}  # refused by plan_check; not read to be hashed
        path = loader.resolve(self.params.model)
        weights = path / "model.safetensors" if path.is_dir() else path
        return {"weights": file_digest(weights)[:16] if weights.is_file() else None}

    def setup(self, ctx: StepContext) -> None:
        p = self.params
        self.copy_model = loader.load(p.model, resolve_device(p.device), image_size=p.image_size,
                                      mean=p.mean, std=p.std, untrusted=self.untrusted)

    def process_shard(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        from torch.utils.data import DataLoader

        model = self.copy_model
        dataset = _Images(table[self.params.image_column].to_list(), ctx.extras.get("store_dir"), model.preparer(),
                          within=ctx.image_folders)
        vectors, present = [], []
        for pixels, ok in DataLoader(dataset, batch_size=self.params.batch_size, num_workers=self.params.workers):
            vectors.append(model.embed(pixels))
            present.append(ok.numpy())
            ctx.advance(len(ok))
        if vectors:
            found = np.concatenate(present)
            store = EmbeddingStore(ctx.artifacts, self.params.embedding)
            if not store.exists():
                store.write_meta(vectors[0].shape[1], model.name, kind="copy", source=self.params.model,
                                 threshold=model.threshold, image_size=model.image_size,
                                 mean=list(model.mean), std=list(model.std))
            store.write_shard(ctx.shard or 0, table[UID].filter(pl.Series(found)), np.concatenate(vectors)[found])
        self._facts = {"model": model.name, "device": model.device}
        return table

    def summary(self, ctx: StepContext) -> dict[str, Any]:
        return dict(getattr(self, "_facts", {}))


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
