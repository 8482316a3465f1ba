"""A sidecar store of L2-normalized embeddings, one row per uid, float16, beside a step's output.

Model steps (``clip_score``) write it; dedup and mixing read it instead of recomputing.

    <step store>/artifacts/embeddings/<name>/      name: "image", "text_alt_text", …
        meta.json                                  {"dim", "model", "dtype", "normalized"}
        shard-00000.npy                            (rows, dim) float16
        shard-00000.uids.parquet                   the uid of each row, same order

Plain ``.npy`` so numpy memory-maps it; the uid files are Parquet so DuckDB can join on them.
Shard files are written atomically and named by the *input* shard index, so a resumed step
rewrites only what is missing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate.atomic import atomic_path, write_text_atomic
from curate.errors import CurateError

EMBEDDINGS = "embeddings"


class EmbeddingStore:
    def __init__(self, root: Path, name: str):
        self.root = Path(root)
        self.name = name
        self.dir = self.root / EMBEDDINGS / name

    @classmethod
    def of_step(cls, step_dir: Path | str, name: str) -> EmbeddingStore:
        return cls(Path(step_dir) / "artifacts", name)

    # -- writing --------------------------------------------------------------------------
    def write_meta(self, dim: int, model: str, **extra: Any) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = {"dim": dim, "model": model, "dtype": "float16", "normalized": True, **extra}
        write_text_atomic(self.dir / "meta.json", json.dumps(meta, indent=2, sort_keys=True))

    def write_shard(self, shard: int, uids: list[str] | pl.Series, vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(uids):
            raise ValueError(f"{len(uids)} uids but vectors of shape {vectors.shape}")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
        self.dir.mkdir(parents=True, exist_ok=True)
        base = self.dir / f"shard-{shard:05d}"
        # The .npy is renamed last (outer block): its presence means the shard is whole.
        with atomic_path(base.with_suffix(".npy")) as tmp_npy:
            with open(tmp_npy, "wb") as handle:
                np.save(handle, vectors.astype(np.float16))
            with atomic_path(base.with_suffix(".uids.parquet")) as tmp_uids:
                pl.DataFrame({"uid": pl.Series(list(uids), dtype=pl.Utf8)}).write_parquet(tmp_uids)

    # -- reading --------------------------------------------------------------------------
    def exists(self) -> bool:
        return (self.dir / "meta.json").exists()

    def meta(self) -> dict[str, Any]:
        if not self.exists():
            raise CurateError(f"no '{self.name}' embeddings in {self.dir}",
                              "run a step that writes them (e.g. clip_score) upstream of this one")
        return json.loads((self.dir / "meta.json").read_text())

    def shards(self) -> Iterator[tuple[pl.Series, np.ndarray]]:
        """(uids, vectors) per shard; vectors are memory-mapped float16."""
        for npy in sorted(self.dir.glob("shard-*.npy")):
            uids = pl.read_parquet(npy.with_suffix(".uids.parquet"))["uid"]
            yield uids, np.load(npy, mmap_mode="r")

    def uids(self) -> pl.Series:
        parts = [pl.read_parquet(p)["uid"] for p in sorted(self.dir.glob("shard-*.uids.parquet"))]
        return pl.concat(parts) if parts else pl.Series("uid", [], dtype=pl.Utf8)

    def lookup(self, uids: list[str] | pl.Series, dtype: Any = np.float32) -> np.ndarray:
        """Vectors for ``uids`` in that order; rows for unknown uids are all zeros."""
        wanted = pl.DataFrame({"uid": pl.Series(list(uids), dtype=pl.Utf8)}).with_row_index("_pos")
        dim = int(self.meta()["dim"])
        out = np.zeros((wanted.height, dim), dtype=dtype)
        for shard_uids, vectors in self.shards():
            here = pl.DataFrame({"uid": shard_uids}).with_row_index("_at")
            hits = wanted.join(here, on="uid", how="inner")
            if hits.height:
                out[hits["_pos"].to_numpy()] = vectors[hits["_at"].to_numpy()].astype(dtype)
        return out

    def load_all(self, dtype: Any = np.float32) -> tuple[pl.Series, np.ndarray]:
        """Every uid and vector (for table-wide steps like semantic dedup)."""
        uids, blocks = [], []
        for shard_uids, vectors in self.shards():
            uids.append(shard_uids)
            blocks.append(np.asarray(vectors, dtype=dtype))
        if not blocks:
            dim = int(self.meta()["dim"])
            return pl.Series("uid", [], dtype=pl.Utf8), np.zeros((0, dim), dtype=dtype)
        return pl.concat(uids), np.concatenate(blocks)
