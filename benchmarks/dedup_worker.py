"""One measured dedup run, in its own process so its time and peak memory are its own.

    python -m benchmarks.dedup_worker DATA_DIR ROWS METHOD OUT_JSON [PARAMS_JSON]

METHOD is ``step`` (the dedup_semantic step, as the engine runs it: read the table, look up the
embeddings, find groups, write kept and dropped shards) or ``brute`` (every pair by blocked
matrix products over the same rows: the exact answer, for a speed ratio and a check).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl


def main(argv: list[str]) -> None:
    data, rows, method, out = Path(argv[0]), int(argv[1]), argv[2], Path(argv[3])
    params = json.loads(argv[4]) if len(argv) > 4 else {}
    with tempfile.TemporaryDirectory(prefix="bench-dedup-", dir=out.parent) as tmp:
        table = pl.read_parquet(data / "table.parquet").head(rows)
        started = time.perf_counter()
        result = run_step(table, data, Path(tmp), params) if method == "step" else run_brute(table, data)
        result["seconds_in_process"] = round(time.perf_counter() - started, 3)
    out.write_text(json.dumps(result))


def run_step(table: pl.DataFrame, data: Path, tmp: Path, params: dict) -> dict:
    from curate_dedup.semantic import DedupSemantic

    from curate.shards import ShardWriter
    from curate.step import StepContext, TableInput

    source = tmp / "input" / "shard-00000.parquet"
    source.parent.mkdir(parents=True)
    table.select("uid", "clip_score").write_parquet(source)
    step = DedupSemantic(DedupSemantic.Params(**params))
    ctx = StepContext(run_dir=tmp, label=step.label, seed=0, artifacts=tmp / "out" / "artifacts",
                      extras={"upstream": {"clip": str(data / "clip")}})
    schema = {"uid": pl.Utf8, "clip_score": pl.Float32}
    expected = step.output_schema(schema)
    writer = ShardWriter(step, tmp / "out", 100_000, expected)
    for frame in step.process_table(TableInput([source], schema), ctx):
        writer.add(frame)
    writer.close(empty_schema=expected)
    dropped = pl.concat([pl.read_parquet(p) for p in sorted((tmp / "out" / "dropped").glob("*.parquet"))],
                        how="diagonal_relaxed")
    dropped_uids = set(dropped["uid"].to_list()) if dropped.height else set()
    return {"summary": step.summary(ctx), **score(table, dropped_uids)}


def run_brute(table: pl.DataFrame, data: Path) -> dict:
    from curate_dedup.groups import components, make_groups
    from curate_dedup.near import brute_force

    from curate.embeddings import EmbeddingStore

    started = time.perf_counter()
    vectors = EmbeddingStore.of_step(data / "clip", "image").lookup(table["uid"], dtype=np.float16)
    loaded = time.perf_counter() - started
    pairs = brute_force(vectors, 0.94)
    groups = make_groups(components(table.height, pairs.first, pairs.second), np.arange(table.height))
    dropped_uids = set(table["uid"].filter(pl.Series(groups.dropped)).to_list())
    return {"summary": {"pairs": int(pairs.first.size), "groups": groups.n_groups, "load_seconds": round(loaded, 3)},
            **score(table, dropped_uids)}


def score(table: pl.DataFrame, dropped: set[str]) -> dict:
    """Against the planted truth: a planted group of k rows should lose exactly k - 1."""
    truth = table["truth"].to_numpy()
    _, counts = np.unique(truth, return_counts=True)
    should_drop = int((counts - 1).sum())
    is_dropped = table["uid"].is_in(list(dropped)).to_numpy()
    # Rows dropped from a planted group, at most k - 1 per group (dropping all k is a mistake).
    frame = pl.DataFrame({"truth": truth, "dropped": is_dropped})
    per_group = frame.group_by("truth").agg(pl.len().alias("k"), pl.col("dropped").sum().alias("d"))
    correct = int(per_group.select(pl.min_horizontal(pl.col("d"), pl.col("k") - 1).sum()).item())
    return {
        "rows": table.height,
        "dropped": int(is_dropped.sum()),
        "planted_duplicates": should_drop,
        "recall": round(correct / should_drop, 5) if should_drop else 1.0,
        "precision": round(correct / int(is_dropped.sum()), 5) if is_dropped.any() else 1.0,
        "dropped_uids_digest": digest(dropped),
    }


def digest(uids: set[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(sorted(uids)).encode()).hexdigest()[:16]


if __name__ == "__main__":
    main(sys.argv[1:])
