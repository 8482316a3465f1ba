"""MetaCLIP substring matching: rows/s on one core for pyahocorasick (what ``metadata_match``
uses) against ahocorasick-rs and MetaCLIP's pure-Python loop (``entry in text`` for every entry),
over the same spaced texts and padded entries; then the ``metadata_match`` step through
``curate run`` (wall, CPU seconds, peak RSS). The three matchers must return the same ids.

Texts: ``benchmarks.synthetic.metadata_table`` alt-texts (web noise, 0–103 words). Entries:
the synthetic table's common words, then made-up words from its syllables (the table's long tail
is drawn from the same syllables), then common-word bigrams, until there are enough. Small:
100k rows × 50k entries; full: 1M rows × 500k entries (MetaCLIP v1's list size). The Python loop
runs on a few hundred rows only: it costs one substring search per entry per text.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.measure import curate_command, data_dir, measure, median, tmp_dir
from benchmarks.synthetic import COMMON_WORDS, metadata_table

SIZES = {"small": (100_000, 50_000), "full": (1_000_000, 500_000)}
SYLLABLES = ["ka", "lo", "mi", "ra", "tes", "on", "ber", "gal", "dun", "shi", "pe", "vor",
             "an", "el", "quin", "tra", "zo", "ni", "mar", "cel", "by", "ust", "ven", "ho"]
LOOP_ROWS = 300
REPEATS = int(os.environ.get("CURATE_BENCH_REPEATS", "3"))


def synthetic_entries(count: int) -> list[str]:
    seen: dict[str, None] = dict.fromkeys(COMMON_WORDS)
    bigrams = (f"{a} {b}" for a in COMMON_WORDS for b in COMMON_WORDS if a != b)
    for length in range(1, 6):
        for parts in itertools.product(SYLLABLES, repeat=length):
            if len(seen) >= count:
                return list(seen)[:count]
            seen.setdefault("".join(parts))
            if length == 3:  # mix phrases in among the single words
                seen.setdefault(next(bigrams, "".join(parts)))
    return list(seen)[:count]


def _pyahocorasick(entries: list[str]) -> Any:
    from curate_metadata.matching import Matcher

    return Matcher(entries)


def _ahocorasick_rs(entries: list[str]) -> Any:
    import ahocorasick_rs

    from curate_metadata.matching import padded

    keys: dict[str, list[int]] = {}
    for entry_id, entry in enumerate(entries):
        keys.setdefault(padded(entry), []).append(entry_id)
    patterns = list(keys)
    ids = [tuple(keys[p]) for p in patterns]
    automaton = ahocorasick_rs.AhoCorasick(patterns, matchkind=ahocorasick_rs.MATCHKIND_STANDARD)

    def match(spaced: str) -> list[int]:
        found: set[int] = set()
        for index in automaton.find_matches_as_indexes(spaced, overlapping=True):
            found.update(ids[index[0]])
        return sorted(found)

    return match


def _python_loop(entries: list[str]) -> Any:
    from curate_metadata.matching import padded

    keys = [padded(entry) for entry in entries]
    return lambda spaced: [i for i, key in enumerate(keys) if key in spaced]


def _spaced_texts(source: Path, rows: int) -> list[str | None]:
    from curate_metadata.matching import matchable_column

    return matchable_column(pl.scan_parquet(str(source / "*.parquet")).head(rows).collect()["alt_text"])


def _step_run(source: Path, entries_file: Path, rows: int) -> dict[str, Any]:
    """metadata_match then metadata_balance through the engine, one worker: what a user's run
    costs per core, and its peak memory."""
    where = tmp_dir("metadata_match", str(rows))
    spec = {
        "name": "bench_metadata_match",
        "source": {"format": "parquet", "path": str(source)},
        "steps": [{"step": "metadata_match", "params": {"entries": str(entries_file)}},
                  {"step": "metadata_balance", "params": {"t": max(1, rows // 50)}}],
        "run": {"dir": str(where / "run"), "seed": 0, "report": False, "shard_size": 100_000},
    }
    spec_path = where / "spec.yaml"
    spec_path.write_text(json.dumps(spec))
    result = measure([*curate_command(), "run", str(spec_path), "--quiet", "--no-cache"], cwd=where, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"curate run failed: {result.stderr[-2000:]}")
    manifest = json.loads((where / "run" / "manifest.json").read_text())
    match, balance = manifest["steps"][1], manifest["steps"][2]
    return {"wall seconds (whole run)": round(result.seconds, 2), "CPU seconds (whole run)":
            round(result.cpu_seconds, 2), "peak RSS MB": round(result.peak_rss_bytes / 2**20),
            "match seconds": match["seconds"], "match rows/s": round(rows / match["seconds"]),
            "rows matched": match["rows_out"], "balance t": balance["summary"]["t"],
            "balance seconds": balance["seconds"], "balance rows/s": round(match["rows_out"] / balance["seconds"]),
            "rows kept": balance["rows_out"]}


def run(scale: str) -> dict[str, Any]:
    rows, count = SIZES[scale]
    rows = int(os.environ.get("CURATE_BENCH_ROWS", rows))
    source = metadata_table(rows, data_dir("metadata_match"))
    entries = synthetic_entries(count)
    texts = _spaced_texts(source, rows)

    built, build_seconds = {}, {}
    for name, make in (("pyahocorasick", _pyahocorasick), ("ahocorasick-rs", _ahocorasick_rs),
                       ("python loop", _python_loop)):
        started = time.perf_counter()
        built[name] = make(entries)
        build_seconds[name] = round(time.perf_counter() - started, 2)
    matchers = {
        "pyahocorasick": built["pyahocorasick"].match,
        "ahocorasick-rs": built["ahocorasick-rs"],
        "python loop": built["python loop"],
    }

    seconds: dict[str, list[float]] = {name: [] for name in matchers}
    results: dict[str, list[list[int]]] = {}
    for _ in range(REPEATS):  # alternate, so load drift hits all three alike
        for name, match in matchers.items():
            subset = texts[:LOOP_ROWS] if name == "python loop" else texts
            started = time.process_time()  # CPU seconds of this (single-threaded) process: per core
            results[name] = [match(t) if t is not None else [] for t in subset]
            seconds[name].append(time.process_time() - started)
    if results["pyahocorasick"] != results["ahocorasick-rs"]:
        raise RuntimeError("pyahocorasick and ahocorasick-rs disagree")
    if results["pyahocorasick"][:LOOP_ROWS] != results["python loop"]:
        raise RuntimeError("the automaton disagrees with MetaCLIP's loop")

    throughput = {name: len(results[name]) / median(values) for name, values in seconds.items()}
    table = [{"matcher": name, "rows": len(results[name]), "entries": count,
              "build seconds": build_seconds[name], "CPU seconds (median)": round(median(seconds[name]), 3),
              "rows/s per core": round(throughput[name])} for name in matchers]
    matched = sum(bool(ids) for ids in results["pyahocorasick"])

    entries_file = data_dir("metadata_match") / f"entries-{count}.txt"
    if not entries_file.exists():
        entries_file.write_text("\n".join(entries) + "\n")
    step = _step_run(source, entries_file, rows)
    return {
        "headline": {
            f"pyahocorasick rows/s per core ({rows:,} rows × {count:,} entries)": round(throughput["pyahocorasick"]),
            "ahocorasick-rs / pyahocorasick": round(throughput["ahocorasick-rs"] / throughput["pyahocorasick"], 2),
            "pyahocorasick / python loop": round(throughput["pyahocorasick"] / throughput["python loop"]),
            "rows matching an entry": f"{matched / len(texts):.1%}",
        },
        "table": table,
        "tables": {"metadata_match + metadata_balance via curate run (1 worker)": [step]},
        "notes": [f"python loop timed on the first {LOOP_ROWS} rows; all three agree on them, "
                  "and the two automata on every row",
                  "rows/s per core: rows over CPU seconds of the matching loop (spaced texts precomputed)"],
    }


# -- scaling: bounded memory at growing sizes ------------------------------------------------------
SCALING_ENTRIES = 500_000


def _run_spec(where: Path, source: Path, entries_file: Path, rows: int, workers: int, memory_limit: str) -> Path:
    spec = {
        "name": "bench_metadata_scaling",
        "source": {"format": "parquet", "path": str(source)},
        "steps": [{"step": "metadata_match", "params": {"entries": str(entries_file)}},
                  {"step": "metadata_balance", "params": {"t": max(1, rows // 50)}}],
        "run": {"dir": str(where / "run"), "seed": 0, "report": False, "shard_size": 100_000,
                "memory_limit": memory_limit, "executor": {"name": "local", "params": {"workers": workers}}},
    }
    path = where / "spec.yaml"
    path.write_text(json.dumps(spec))
    return path


def _measured(command: list[str], where: Path) -> dict[str, Any]:
    result = measure(command, cwd=where, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr[-2000:]}")
    return {"wall seconds": round(result.seconds, 1), "CPU seconds": round(result.cpu_seconds, 1),
            "peak RSS MB (largest process)": round(result.peak_rss_bytes / 2**20),
            "tree RSS MB (sum, sampled)": round(result.tree_rss_bytes / 2**20)}


def scaling(sizes: list[int], workers: int = 2, memory_limit: str = "4GB", rerun: bool = True) -> dict[str, Any]:
    """metadata_match + metadata_balance through ``curate run`` at each size, 500k entries,
    ``workers`` local workers: (1) the whole run, ingest included, from nothing; (2) the two steps
    again on the cached ingest (``--from metadata_match``): their memory without the ingest's.
    Rows/s per core = rows / CPU seconds (all processes), so a busy machine stretches wall time only."""
    entries_file = data_dir("metadata_match") / f"entries-{SCALING_ENTRIES}.txt"
    if not entries_file.exists():
        entries_file.write_text("\n".join(synthetic_entries(SCALING_ENTRIES)) + "\n")
    table = []
    for rows in sizes:
        source = metadata_table(rows, data_dir("metadata_match"))
        where = tmp_dir("metadata_scaling", str(rows))
        spec = _run_spec(where, source, entries_file, rows, workers, memory_limit)
        whole = _measured([*curate_command(), "run", str(spec), "--quiet", "--no-cache"], where)
        manifest = json.loads((where / "run" / "manifest.json").read_text())
        steps = {s["label"]: s for s in manifest["steps"]}
        again = _measured([*curate_command(), "run", str(spec), "--quiet", "--from", "metadata_match"], where) \
            if rerun else None
        table.append({
            "rows": rows, "workers": workers, "memory_limit": memory_limit,
            "whole run": whole, **({"steps only (ingest cached)": again} if again else {}),
            "rows/s per core, whole run": round(rows / whole["CPU seconds"]),
            **({"rows/s per core, match + balance": round(rows / again["CPU seconds"])} if again else {}),
            "step seconds (wall)": {label: s["seconds"] for label, s in steps.items()},
            "rows matched": steps["metadata_match"]["rows_out"], "rows kept": steps["metadata_balance"]["rows_out"],
            "entries matched": steps["metadata_balance"]["summary"].get("entries_matched"),
        })
        print(json.dumps(table[-1]), flush=True)
        import shutil

        shutil.rmtree(where, ignore_errors=True)  # a 10M run's shards are GBs
    return {"entries": SCALING_ENTRIES, "sizes": table}


if __name__ == "__main__":
    import argparse

    from benchmarks.measure import RESULTS_DIR, machine_facts

    parser = argparse.ArgumentParser(description="metadata_match + metadata_balance at growing sizes: peak RSS")
    parser.add_argument("--sizes", default="1000000,3000000,10000000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="4GB")
    parser.add_argument("--no-rerun", action="store_true", help="skip the steps-only rerun on the cached ingest")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "metadata_match_scaling.json")
    args = parser.parse_args()
    started = machine_facts()
    result = scaling([int(s) for s in args.sizes.split(",")], args.workers, args.memory_limit, not args.no_rerun)
    args.out.write_text(json.dumps({"benchmark": "metadata_match scaling", "machine": started,
                                    "machine_after": machine_facts(), **result}, indent=2) + "\n")
