"""``dedup_semantic``: near-duplicate images, judged on the embeddings an upstream step stored
(``copy_embed``'s copy-detection descriptors with ``embedding: copy``, or ``clip_score``'s CLIP
image embeddings), with faiss.

Rows more similar than ``1 - eps`` (cosine) are linked; linked rows form duplicate groups
(connected components), and one row per group stays, chosen by the keep policy. Dropped rows
name the row that stayed (``_duplicate_of``) and their cosine to it (``dup_similarity``); kept
and dropped rows carry their group (``dup_group``). Rows without an embedding are kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from curate.errors import CurateError
from curate.schema import Schema
from curate.step import Step, StepContext, TableInput
from curate_dedup import backend, near
from curate_dedup.groups import components, make_groups
from curate_dedup.keep import KeepParams, priority
from curate_dedup.table import GROUP, annotate, read_columns, verdict
from curate_dedup.vectors import lookup, upstream_store

UNTRACKED = {"fingerprint": False}  # changes speed, not output
log = logging.getLogger("curate_dedup")


class DedupSemanticParams(KeepParams):
    keep: Literal["first", "last", "max", "min", "far_from_centroid"] = Field(  # type: ignore[assignment]
        "first", description="far_from_centroid: the member least similar to its k-means centroid "
                              "(knn: to its group's mean), SemDeDup's choice")
    algorithm: Literal["knn", "semdedup"] = Field("knn", description="knn: nearest-neighbor graph (exact "
                                                  "with a flat index); semdedup: k-means, then pairs within clusters")
    eps: float = Field(0.06, gt=0.0, lt=1.0, description="rows with cosine similarity > 1 - eps are duplicates")
    embeddings_from: str | None = Field(None, description="label of the upstream step whose embeddings to use; "
                                        "default: the nearest one that stored them")
    embedding: str = Field("image", description="which stored embedding (image, text_alt_text, …)")
    seed: int = Field(0, ge=0, description="k-means and IVF training samples")
    # knn
    neighbors: int = Field(16, ge=1, le=1024, description="knn: neighbors asked per row")
    index: Literal["auto", "flat", "ivf"] = Field("auto", description="knn: auto is flat up to ivf_above rows")
    ivf_above: int = Field(50_000, ge=1)
    nlist: int | None = Field(None, ge=1, description="knn/ivf: cells; default sqrt(rows), at most rows/39")
    nprobe: int = Field(8, ge=1, le=2048, description="knn/ivf: cells searched per row")
    # semdedup
    clusters: int | None = Field(None, ge=1, description="semdedup: k-means clusters; default sqrt(rows), at most rows/39")
    niter: int = Field(20, ge=1, le=1000, description="semdedup: k-means iterations")
    points_per_centroid: int = Field(64, ge=1, le=4096, description="semdedup: k-means training sample per centroid")
    spill: float = Field(0.02, ge=0.0, le=2.0, description="semdedup: rows whose second-nearest centroid is within "
                         "this cosine of the nearest are compared in both clusters (finds pairs split by a boundary)")
    # where and how fast
    device: Literal["auto", "cpu", "gpu"] = Field("auto", description="auto: GPU if the faiss GPU build sees one",
                                                  json_schema_extra=UNTRACKED)
    threads: int | None = Field(None, ge=1, description="faiss threads (default: all cores)", json_schema_extra=UNTRACKED)
    backend: Literal["auto", "faiss", "torch"] = Field(
        "auto", description="semdedup: faiss, or torch (k-means and in-cluster products as torch matmuls: a GPU "
        "without faiss-gpu); auto: torch when torch sees CUDA and faiss no GPU (and device is not cpu)",
        json_schema_extra=UNTRACKED)

    @model_validator(mode="after")
    def _torch_is_semdedup(self) -> DedupSemanticParams:
        if self.backend == "torch" and self.algorithm != "semdedup":
            raise ValueError("backend 'torch' runs algorithm 'semdedup' only; use backend faiss (or auto) for knn")
        return self

    @property
    def threshold(self) -> float:
        return 1.0 - self.eps


class DedupSemantic(Step):
    name = "dedup_semantic"
    description = "drop near-duplicate images by embedding similarity: CLIP or copy_embed (faiss: knn graph or SemDeDup)"
    requires = ("faiss",)
    extra = "dedup"
    scope = "table"
    drops_rows = True
    writes: ClassVar[Schema] = {GROUP: pl.Int64}
    Params = DedupSemanticParams

    def input_columns(self) -> dict[str, pl.DataType]:
        return self.params.keep_columns()

    def process_table(self, table: TableInput, ctx: StepContext) -> Iterator[pl.DataFrame]:
        p = self.params
        started = time.perf_counter()
        frame = read_columns(table, list(self.input_columns()))
        source, store = upstream_store(ctx, p.embeddings_from, p.embedding)
        vectors, present = lookup(store, frame["uid"])
        rows = np.flatnonzero(present)
        if rows.size < vectors.shape[0]:
            vectors = vectors[rows]
        loaded = time.perf_counter() - started
        engine, device = resolve_engine(p)
        if engine == "torch":
            found = find_pairs(vectors, p, device, engine)
        else:
            with backend.threads(p.threads):
                found = find_pairs(vectors, p, device)
        del vectors
        # Back from embedded-row space to table-row space.
        n = frame.height
        labels = components(n, rows[found.first], rows[found.second])
        centroid_sim = None
        if p.keep == "far_from_centroid":
            centroid_sim = np.full(n, np.nan)
            centroid_sim[rows] = self._centroid_similarity(found, labels[rows], store, frame, rows)
        groups = make_groups(labels, priority(p, frame, centroid_sim))
        similarity = self._survivor_similarity(groups, store, frame)
        self._facts = {
            "algorithm": p.algorithm, "eps": p.eps, "threshold": round(p.threshold, 6), "device": device,
            "backend": engine,
            "embeddings_from": source, "model": store.meta().get("model"),
            "rows": n, "rows_without_embedding": int(n - rows.size), "pairs": int(found.first.size),
            "groups": groups.n_groups, "dropped": int(groups.dropped.sum()),
            "largest_group": int(groups.sizes().max()) if groups.n_groups else 0,
            "load_seconds": round(loaded, 3), **found.facts,
            "seconds": round(time.perf_counter() - started, 3),
        }
        largest = self._facts["largest_group"]
        if rows.size >= 100 and largest > 0.1 * rows.size:
            # One group holding a tenth of the table is rarely duplication: usually embeddings
            # that cannot tell the images apart at this eps (a weak model, or eps too large).
            log.warning("step '%s': one duplicate group holds %d of %d rows; check eps (%s) and the embeddings "
                        "(%s)", self.label, largest, rows.size, p.eps, self._facts["model"])
        yield from annotate(table, verdict(frame, groups, self.label, similarity))

    def _centroid_similarity(self, found: near.Pairs, labels: np.ndarray, store: Any, frame: pl.DataFrame,
                             rows: np.ndarray) -> np.ndarray:
        """Cosine of each embedded row to its k-means centroid (semdedup) or, for knn, which has
        no clusters, to the mean direction of its duplicate group."""
        if found.centroid_similarity is not None:
            return found.centroid_similarity
        out = np.ones(rows.size)
        counts = np.bincount(labels, minlength=labels.max() + 1 if labels.size else 0)
        grouped = np.flatnonzero(counts[labels] > 1)
        if grouped.size:
            vectors = lookup(store, frame["uid"].gather(rows[grouped]))[0].astype(np.float32)
            _, slot = np.unique(labels[grouped], return_inverse=True)
            means = np.zeros((slot.max() + 1, vectors.shape[1]), dtype=np.float32)
            np.add.at(means, slot, vectors)
            means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
            out[grouped] = np.einsum("ij,ij->i", vectors, means[slot])
        return out

    def _survivor_similarity(self, groups: Any, store: Any, frame: pl.DataFrame) -> np.ndarray:
        """Cosine of every dropped row to the row that stayed for it (NaN elsewhere)."""
        out = np.full(frame.height, np.nan, dtype=np.float32)
        dropped = np.flatnonzero(groups.dropped)
        if dropped.size:
            uids = frame["uid"]
            mine = lookup(store, uids.gather(dropped))[0].astype(np.float32)
            theirs = lookup(store, uids.gather(groups.survivor[dropped]))[0].astype(np.float32)
            out[dropped] = np.einsum("ij,ij->i", mine, theirs)
        return out

    def summary(self, ctx: StepContext) -> dict[str, Any]:
        return dict(getattr(self, "_facts", {}))


def resolve_engine(params: DedupSemanticParams) -> tuple[str, str]:
    """(faiss or torch, cpu or gpu) for this run. auto keeps faiss unless it is the semdedup
    algorithm, torch sees CUDA, faiss sees no GPU, and the device is not pinned to cpu."""
    from curate_dedup import torch_backend

    choice = params.backend
    if choice == "auto":
        wants_gpu = params.algorithm == "semdedup" and params.device != "cpu" and torch_backend.cuda()
        choice = "torch" if wants_gpu and _faiss_gpus() == 0 else "faiss"
    if choice == "faiss":
        return "faiss", backend.resolve_device(params.device)
    if params.device == "gpu" and not torch_backend.cuda():
        raise CurateError("device 'gpu' asked for with backend torch, but torch sees no CUDA device",
                          "use device: auto or cpu")
    return "torch", "gpu" if params.device != "cpu" and torch_backend.cuda() else "cpu"


def _faiss_gpus() -> int:
    try:
        return backend.gpu_count()
    except CurateError:  # faiss not installed: the torch backend needs none
        return 0


def find_pairs(vectors: np.ndarray, params: DedupSemanticParams, device: str, engine: str = "faiss") -> near.Pairs:
    """Pairs above the threshold among ``vectors`` (float16, unit length) by the chosen algorithm."""
    if vectors.shape[0] < 2:
        empty = np.zeros(0, np.int64)
        return near.Pairs(empty, empty, np.zeros(0, np.float32),
                          np.ones(vectors.shape[0], np.float32) if params.algorithm == "semdedup" else None)
    if params.algorithm == "knn":
        options = near.KnnOptions(params.neighbors, params.index, params.ivf_above, params.nlist, params.nprobe)
        return near.knn(vectors, params.threshold, options, params.seed, device)
    options_ = near.SemDedupOptions(params.clusters, params.niter, params.points_per_centroid, params.spill)
    return near.semdedup(vectors, params.threshold, options_, params.seed, device,
                         engine="torch" if engine == "torch" else "faiss")
