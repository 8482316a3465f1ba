"""Shared by the fusion tests (test_fusion.py, test_fusion_heads.py): the relational steps a chain
is drawn from, the spec of a chain, and the check that a fused run stored what the steps alone do."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

# Relational steps a chain is drawn from; exact_dedup is table-scope, so it splits groups.
CHOICES = {
    "filter": {"step": "filter", "params": {"where": "score >= 0.25", "reason": "low_score"}},
    "filter_lang": {"step": "filter", "params": {"where": "lang <> 'fr'", "reason": "french"}},
    "sample": {"step": "sample", "params": {"fraction": 0.7}},
    "normalize": {"step": "normalize_text", "params": {"min_length": 3}},
    "sql": {"step": "sql", "params": {"query": "SELECT * FROM input WHERE length(url) > 30", "per_shard": True,
                                      "drop_reason": "short_url"}},
    "dedup": {"step": "exact_dedup", "params": {"columns": ["url", "alt_text"]}},
    "select": {"step": "select", "params": {"columns": ["lang", "score", "alt_text", "url"]}},
}


def chain_spec(names: list[str], shard_size: int, fuse: bool) -> dict:
    steps = []
    for position, name in enumerate(names):
        step = json.loads(json.dumps(CHOICES[name]))
        steps.append({**step, "name": f"s{position}_{name}"})
    return {"name": "fusion", "source": {"path": "data.parquet"}, "steps": steps,
            "outputs": [{"format": "parquet", "path": "out.parquet"}],
            "run": {"shard_size": shard_size, "fuse": fuse, "fuse_heads": fuse, "report": False}}


def stored_files(manifest: dict) -> dict[str, bytes]:
    """Every stored shard of every step (kept where stored, dropped always)."""
    out = {}
    for record in manifest["steps"]:
        for kind in ("data", "dropped"):
            for path in sorted((Path(record["path"]) / kind).glob("shard-*.parquet")):
                out[f"{record['index']:02d}_{record['label']}/{kind}/{path.name}"] = path.read_bytes()
    return out


def lineage(run_dir: Path) -> list[tuple]:
    con = duckdb.connect(str(run_dir / "curate.duckdb"), read_only=True)
    try:
        return con.execute("SELECT uid, step_index, step, reason, duplicate_of FROM lineage ORDER BY ALL").fetchall()
    finally:
        con.close()


def assert_same_stores(fused: dict, alone: dict) -> None:
    """A fused run (manifest ``fused``) and the same spec with every step alone (``alone``): the
    same rows in, rows out and drop reasons per step; every shard the fused run stored (dropped
    rows always, kept rows where stored) byte for byte the one stored alone; what it did not store
    only kept rows; the same lineage."""
    for a, b in zip(fused["steps"], alone["steps"], strict=True):
        assert (a["label"], a["rows_in"], a["rows_out"], a["dropped"]) == \
            (b["label"], b["rows_in"], b["rows_out"], b["dropped"])
    fused_files, alone_files = stored_files(fused), stored_files(alone)
    assert set(fused_files) <= set(alone_files)
    assert [name for name in fused_files if fused_files[name] != alone_files[name]] == []
    assert all("/data/" in name for name in set(alone_files) - set(fused_files))
    assert lineage(Path(fused["run_dir"])) == lineage(Path(alone["run_dir"]))
