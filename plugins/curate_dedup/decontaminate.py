"""``decontaminate``: drop training rows whose image is a near-duplicate of any image of an eval
set, so benchmark images never leak into pretraining.

Each training embedding asks a faiss index over the eval embeddings for its nearest eval item;
rows more similar than ``1 - eps`` are dropped with a reason naming that item
(``decontaminate: eval 17``), and carry ``eval_item`` and ``eval_similarity``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import Field

from curate.errors import CurateError
from curate.params import PLACE, Params
from curate.runfiles import outside_working_directory
from curate.schema import DROP_REASON, Schema
from curate.step import Step, StepContext, TableInput
from curate_dedup import backend
from curate_dedup.evalfiles import locate
from curate_dedup.evalset import eval_digest, files_digest, load_eval_set
from curate_dedup.table import annotate, read_columns
from curate_dedup.vectors import lookup, model_of, upstream_store

UNTRACKED = {"fingerprint": False}
EVAL_ITEM = "eval_item"
EVAL_SIMILARITY = "eval_similarity"


class DecontaminateParams(Params):
    eval: str = Field(..., min_length=1, description="embedding store dir, Parquet with image paths, or image dir; "
                      "relative to the working directory", json_schema_extra=PLACE)
    eps: float = Field(0.1, gt=0.0, lt=1.0, description="rows with cosine > 1 - eps to an eval image are dropped")
    path_column: str = Field("image_path", description="Parquet eval sets: image paths, relative to the file")
    id_column: str | None = Field(None, description="Parquet eval sets: item names (default eval_id/id/uid/key, "
                                  "else the row number)")
    embeddings_from: str | None = Field(None, description="upstream step whose embeddings to use; default: nearest")
    clip_checkpoint: str | None = Field(None, description="image eval sets: the weights clip_score used, when not "
                                        "the shipped world CLIP (the architecture comes from the embeddings)",
                                        json_schema_extra=PLACE)
    embedding: str = "image"
    device: Literal["auto", "cpu", "gpu"] = Field("auto", json_schema_extra=UNTRACKED)
    threads: int | None = Field(None, ge=1, json_schema_extra=UNTRACKED)
    batch_size: int = Field(64, gt=0, description="eval images embedded at once", json_schema_extra=UNTRACKED)


class Decontaminate(Step):
    name = "decontaminate"
    description = "drop rows whose image is a near-duplicate of an eval-set image (benchmark leakage)"
    requires = ("faiss",)
    extra = "dedup"
    scope = "table"
    drops_rows = True
    Params = DecontaminateParams

    def process_table(self, table: TableInput, ctx: StepContext) -> Iterator[pl.DataFrame]:
        p = self.params
        frame = read_columns(table, [])
        source, store = upstream_store(ctx, p.embeddings_from, p.embedding)
        model = {**model_of(store), "checkpoint": p.clip_checkpoint}
        device = backend.resolve_device(p.device)
        evals = load_eval_set(p.eval, model=model, path_column=p.path_column, id_column=p.id_column,
                              cache=ctx.artifacts, device=device, batch_size=p.batch_size, untrusted=self.untrusted)
        if evals.model is not None and model["model"] is not None and evals.model != model["model"]:
            raise CurateError(f"eval embeddings are from model '{evals.model}', the training embeddings from "
                              f"'{model['model']}'", "embed both with the same model")
        if evals.vectors.shape[1] != model["dim"]:
            raise CurateError(f"eval embeddings have {evals.vectors.shape[1]} dimensions, training ones {model['dim']}")
        vectors, present = lookup(store, frame["uid"])
        rows = np.flatnonzero(present)
        with backend.threads(p.threads):
            best, similarity = nearest(vectors[rows], evals.vectors, device)
        del vectors
        hit = similarity > 1.0 - p.eps
        names = np.asarray(evals.names, dtype=object)
        item = np.full(frame.height, None, dtype=object)
        item[rows[hit]] = names[best[hit]]
        sim = np.full(frame.height, np.nan, dtype=np.float32)
        sim[rows] = similarity
        out = pl.DataFrame({EVAL_ITEM: pl.Series(item.tolist(), dtype=pl.Utf8), EVAL_SIMILARITY: sim}).select(
            pl.when(pl.col(EVAL_ITEM).is_not_null()).then(pl.lit(f"{self.label}: eval ") + pl.col(EVAL_ITEM))
            .alias(DROP_REASON),
            pl.col(EVAL_ITEM),
            pl.when(pl.col(EVAL_ITEM).is_not_null()).then(pl.col(EVAL_SIMILARITY)).alias(EVAL_SIMILARITY),
        )
        matched = item[rows[hit]]
        self._facts = {
            "eval": p.eval, "eval_kind": evals.kind, "eval_items": len(evals.names), "eps": p.eps,
            "threshold": round(1.0 - p.eps, 6), "embeddings_from": source, "model": model["model"],
            "device": device, "rows": frame.height, "rows_without_embedding": int(frame.height - rows.size),
            "dropped": int(hit.sum()), "eval_items_matched": len(set(matched.tolist())),
        }
        yield from annotate(table, out)

    def plan_check(self, input_schema: Schema) -> list[str]:
        """The eval set is what it must be, before any row is embedded (raises CurateError)."""
        p = self.params
        locate(p.eval, p.path_column, p.id_column, self.untrusted)
        return []

    def fingerprint_extra(self) -> dict[str, Any]:
        """The eval set's file names, sizes and modification times: changing it reruns the step.
        A Parquet eval set's images too, wherever they lie (an image edited in place left the
        file's own digest as it was, and the step's embeddings of it were reused)."""
        if self.untrusted and outside_working_directory(self.params.eval):
            return {"eval": None}  # refused by plan_check; not walked
        path = Path(self.params.eval).expanduser()
        extra: dict[str, Any] = {"eval": eval_digest(path)}
        if path.is_file():
            try:
                files = locate(self.params.eval, self.params.path_column, self.params.id_column, self.untrusted)
            except CurateError:
                return extra  # plan_check says what is wrong
            extra["images"] = files_digest(files.images)
        return extra

    def summary(self, ctx: StepContext) -> dict[str, Any]:
        return dict(getattr(self, "_facts", {}))


def nearest(queries: np.ndarray, targets: np.ndarray, device: str) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, its most similar target row and the cosine similarity."""
    if queries.shape[0] == 0 or targets.shape[0] == 0:
        return np.zeros(queries.shape[0], np.int64), np.full(queries.shape[0], -np.inf, np.float32)
    index = backend.build_index(targets, "flat", 1, 1, 0, device)
    best, sims = [], []
    for start in range(0, queries.shape[0], backend.BATCH):
        similarity, found = index.search(backend.as_float32(queries[start:start + backend.BATCH]), 1)
        best.append(found[:, 0])
        sims.append(similarity[:, 0])
    return np.concatenate(best).astype(np.int64), np.concatenate(sims).astype(np.float32)
