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
from curate.runfiles import NotRegularFile, describe_mode, open_regular, read_json
from curate.shards import in_shard_order

EMBEDDINGS = "embeddings"
MAX_DIM = 65536  # a meta.json claiming more is damaged (a dim of 1e11 asked numpy for 5.6 TiB)


class EmbeddingStore:
    def __init__(self, root: Path, name: str):
        self.root = Path(root)
        self.name = name
        self.dir = self.root / EMBEDDINGS / name
        # What to do about a damaged file (None: remove the step's store so the step runs again);
        # a store that is no step's (an eval set given by path) says its own.
        self.repair: str | None = None

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
        path = self.dir / "meta.json"
        try:
            meta = read_json(path)
            dim = meta["dim"] if isinstance(meta, dict) else None
        except NotRegularFile as exc:
            raise self._damaged(path, f"it is {describe_mode(exc.mode)}, not a file") from None
        except (OSError, ValueError, KeyError) as exc:
            raise self._damaged(path, f"not the JSON this store writes ({exc})") from None
        if not isinstance(dim, int) or isinstance(dim, bool) or not 0 < dim <= MAX_DIM:
            raise self._damaged(path, f"its dim is {dim!r}, not a whole number in 1..{MAX_DIM}")
        return meta

    def shards(self) -> Iterator[tuple[pl.Series, np.ndarray]]:
        """(uids, vectors) per shard; vectors are memory-mapped float16. A shard that is not what
        :meth:`write_shard` writes (changed by hand, truncated, pickled) is an error naming it."""
        dim = int(self.meta()["dim"])
        for npy in in_shard_order(self.dir.glob("shard-*.npy")):
            uids = self._read_uids(npy.with_suffix(".uids.parquet"))
            try:
                vectors = _map_npy(npy, dim)
            except NotRegularFile as exc:
                raise self._damaged(npy, f"it is {describe_mode(exc.mode)}, not a file") from None
            except (OSError, ValueError, EOFError) as exc:  # never unpickled: only float16 is mapped
                raise self._damaged(npy, str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__) from None
            if vectors.shape[0] != len(uids):
                raise self._damaged(npy, f"{vectors.shape[0]} vectors for {len(uids)} uids")
            yield uids, vectors

    def _read_uids(self, path: Path) -> pl.Series:
        """A shard's uids, from a regular file only (a pipe there waited for a writer forever)."""
        try:
            with open_regular(path) as handle:
                uids = pl.read_parquet(handle)["uid"]
        except NotRegularFile as exc:
            raise self._damaged(path, f"it is {describe_mode(exc.mode)}, not a file") from None
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise self._damaged(path, str(exc).splitlines()[0][:200]) from None
        if uids.dtype != pl.Utf8:
            raise self._damaged(path, f"its uid column holds {uids.dtype}, not text")
        return uids

    def _damaged(self, path: Path, reason: str) -> CurateError:
        step_dir = self.root.parent
        return CurateError(f"embedding store file {path} is damaged: {reason}",
                           self.repair or f"it was changed after the step wrote it; remove {step_dir} so that step "
                           "runs again (or run with --no-cache)")

    def uids(self) -> pl.Series:
        parts = [self._read_uids(p) for p in in_shard_order(self.dir.glob("shard-*.uids.parquet"))]
        return pl.concat(parts) if parts else pl.Series("uid", [], dtype=pl.Utf8)

    def lookup(self, uids: list[str] | pl.Series, dtype: Any = np.float32) -> np.ndarray:
        """Vectors for ``uids`` in that order; rows for unknown uids are all zeros."""
        wanted = pl.DataFrame({"uid": pl.Series(list(uids), dtype=pl.Utf8)}).with_row_index("_pos")
        dim = int(self.meta()["dim"])
        out = np.zeros((wanted.height, dim), dtype=dtype)
        for shard, (shard_uids, vectors) in enumerate(self.shards()):
            here = pl.DataFrame({"uid": shard_uids}).with_row_index("_at")
            hits = wanted.join(here, on="uid", how="inner")
            if hits.height:
                found = vectors[hits["_at"].to_numpy()].astype(dtype)
                self._check_finite(found, shard)
                out[hits["_pos"].to_numpy()] = found
        return out

    def _check_finite(self, vectors: np.ndarray, shard: int) -> None:
        """Vectors read are finite (a NaN would silently match nothing in dedup)."""
        if not np.isfinite(vectors).all():
            files = in_shard_order(self.dir.glob("shard-*.npy"))
            raise self._damaged(files[shard], "it holds NaN or infinite values")

    def load_all(self, dtype: Any = np.float32) -> tuple[pl.Series, np.ndarray]:
        """Every uid and vector (for table-wide steps like semantic dedup)."""
        uids, blocks = [], []
        for shard, (shard_uids, vectors) in enumerate(self.shards()):
            uids.append(shard_uids)
            blocks.append(np.asarray(vectors, dtype=dtype))
            self._check_finite(blocks[-1], shard)
        if not blocks:
            dim = int(self.meta()["dim"])
            return pl.Series("uid", [], dtype=pl.Utf8), np.zeros((0, dim), dtype=dtype)
        return pl.concat(uids), np.concatenate(blocks)


def _map_npy(path: Path, dim: int) -> np.ndarray:
    """The (rows, ``dim``) float16 array of a ``.npy`` file as :meth:`EmbeddingStore.write_shard`
    writes it, memory-mapped from what was opened (a regular file: ``np.load`` opened a pipe and
    waited for a writer). Anything else is refused from the header alone, so Python objects are
    never unpickled; ``ValueError`` says what the file holds."""
    with open_regular(path) as handle:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(handle)
        if dtype.hasobject:
            raise ValueError("it holds Python objects, not float16 vectors")
        if dtype != np.float16 or len(shape) != 2 or shape[1] != dim or fortran_order:
            raise ValueError(f"{dtype} of shape {shape}{', Fortran order' if fortran_order else ''}, "
                             f"not float16 rows of {dim}")
        return np.memmap(handle, dtype=dtype, mode="r", offset=handle.tell(), shape=shape)
