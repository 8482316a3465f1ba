"""One relational pipeline in curate, DataTrove, Data-Juicer and lazy Polars (the floor), side by
side: wall and CPU seconds, peak RSS, rows out; the rows out are checked to be the same.

Pipeline: read Parquet (url, alt_text) → keep ``url LIKE 'http%' AND length(alt_text) >= 3``
(bench_metadata's filter without its svg/gif suffix test, which Data-Juicer's
``general_field_filter`` cannot express, and without normalize_text and sampling, which no peer
reproduces row for row) → exact dedup on url, first occurrence in input order → write Parquet.

Each peer is installed by this benchmark, once, in its own venv under ``benchmarks/.peers/``
(``python3.11 -m venv``; never a curate dependency); a failed install is recorded and the others
are still reported. The peer jobs are in ``benchmarks/peers/``. Every tool gets 2 workers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from benchmarks import synthetic
from benchmarks.measure import (
    BENCHMARKS_DIR,
    CommandFailed,
    Measurement,
    curate_command,
    data_dir,
    measure,
    median,
    python,
    tmp_dir,
)

SIZES = {"small": (100_000,), "full": (100_000, 1_000_000, 2_000_000)}
REPEATS = {100_000: 1, 1_000_000: 2, 2_000_000: 2}  # override with CURATE_BENCH_REPEATS
PART_ROWS = 250_000  # rows per input file: DataTrove hands whole files to its tasks
WORKERS = 2
SEED = 0
MIN_LENGTH = 3
FILTER = f"url LIKE 'http%' AND length(alt_text) >= {MIN_LENGTH}"
TOOLS = ("curate", "polars", "datatrove", "datajuicer")
# A tool whose run would take longer than this (projected linearly from a smaller size of the
# same run) is skipped at that size; one that runs past it is stopped. CURATE_BENCH_PEER_TIMEOUT.
TIMEOUT_SECONDS = 1200

PEERS_DIR = BENCHMARKS_DIR / ".peers"  # one venv per peer (gitignored)
JOBS_DIR = BENCHMARKS_DIR / "peers"
PEERS: dict[str, dict[str, Any]] = {
    "datatrove": {
        # io: pyarrow for ParquetReader/Writer; processing: xxhash, regex, tokenizers... which
        # datatrove.pipeline.dedup imports at package level.
        "packages": ["datatrove[io,processing]"],
        "distribution": "datatrove",
        "job": JOBS_DIR / "datatrove_job.py",
        "how": "LocalPipelineExecutor(tasks=2, workers=2): ParquetReader → LambdaFilter → "
               "ExactDedupSignature(url) | ExactFindDedups (2 buckets) | ParquetReader → LambdaFilter → "
               "ExactDedupFilter → ParquetWriter(zstd)",
    },
    "datajuicer": {
        # py-data-juicer 1.6.1 imports aiohttp without declaring it, and its lazy loader installs
        # ray and torch (uv) on the first run: installed here, so no measured run installs anything.
        "packages": ["py-data-juicer", "aiohttp", "ray", "torch"],
        "distribution": "py-data-juicer",
        "job": JOBS_DIR / "datajuicer_job.py",
        "how": "dj-process, default executor, np=2: general_field_filter (url prefix, non-null text) → "
               "text_length_filter(min_len=3) → document_deduplicator(text_key=url) → Parquet export "
               f"(recipe: {(JOBS_DIR / 'datajuicer.yaml').relative_to(BENCHMARKS_DIR.parent)})",
    },
}


# --- peers: install once, reuse ---------------------------------------------------------------

def peer_python(tool: str, peers_dir: Path = PEERS_DIR) -> Path:
    return peers_dir / tool / "bin" / "python"


def ensure_peer(tool: str, peers_dir: Path = PEERS_DIR) -> dict[str, Any]:
    """Install ``tool`` in its venv unless a previous install succeeded: {"version": ...} or
    {"error": why}. A failed install is retried on the next run."""
    venv = peers_dir / tool
    marker = venv / "_INSTALLED.json"
    if marker.exists():
        return json.loads(marker.read_text())
    peer = PEERS[tool]
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    steps = [["python3.11", "-m", "venv", str(venv)],
             [str(peer_python(tool, peers_dir)), "-m", "pip", "install", "-q", *peer["packages"]]]
    for command in steps:
        try:
            done = subprocess.run(command, capture_output=True, text=True)
        except OSError as exc:
            return {"error": f"{' '.join(command)}: {exc}"}
        if done.returncode != 0:
            lines = [line for line in (done.stderr or done.stdout).splitlines() if not line.startswith("WARNING")]
            return {"error": f"{' '.join(command)} exited {done.returncode}: " + "\n".join(lines[-10:])}
    version = subprocess.run(
        [str(peer_python(tool, peers_dir)), "-c",
         f"import importlib.metadata as m; print(m.version({peer['distribution']!r}))"],
        capture_output=True, text=True)
    if version.returncode != 0:
        return {"error": f"{peer['distribution']} does not import after install: {version.stderr.strip()[-500:]}"}
    info = {"version": version.stdout.strip(), "packages": peer["packages"]}
    marker.write_text(json.dumps(info) + "\n")
    return info


# --- input and the four jobs -----------------------------------------------------------------

def input_parts(rows: int) -> Path:
    """The synthetic metadata table (bench_metadata's generator) in files of PART_ROWS rows,
    so that every tool can read in parallel; cached."""
    out = data_dir("peers", f"metadata-{rows}-s{SEED}-v{synthetic.GENERATOR_VERSION}-parts{PART_ROWS}")
    done = out / "_SPLIT.json"
    if done.exists():
        return out
    source = synthetic.metadata_table(rows, data_dir("metadata"), seed=SEED)
    table = pl.scan_parquet(str(source / "*.parquet"))
    for part, start in enumerate(range(0, rows, PART_ROWS)):
        table.slice(start, PART_ROWS).collect().write_parquet(out / f"part-{part:05d}.parquet", compression="zstd")
    done.write_text(json.dumps({"rows": rows, "part_rows": PART_ROWS}) + "\n")
    return out


def spec(source: Path, output: Path, run_dir: Path, workers: int = WORKERS) -> dict[str, Any]:
    """The curate side; benchmarks/peers/*_job.py are the same pipeline in the other tools."""
    return {
        "name": "bench_peers",
        "source": {"format": "parquet", "path": str(source)},
        "steps": [
            {"step": "filter", "name": "http_alt_text", "params": {"where": FILTER}},
            {"step": "exact_dedup", "params": {"columns": ["url"], "keep": "first"}},
        ],
        "outputs": [{"format": "parquet", "path": str(output)}],
        "run": {"dir": str(run_dir), "seed": SEED, "report": False,
                "executor": {"name": "local", "params": {"workers": workers}}},
    }


def command(tool: str, source: Path, work: Path) -> tuple[list[str], Path]:
    """The command that runs ``tool``'s job, and where its output goes (a file or a folder)."""
    if tool == "curate":
        spec_path = work / "spec.yaml"
        output = work / "curate.parquet"
        spec_path.write_text(yaml.safe_dump(spec(source, output, work / "run"), sort_keys=False))
        return [*curate_command(), "run", str(spec_path), "--quiet", "--no-cache"], output
    if tool == "polars":
        output = work / "polars.parquet"
        return [python(), str(JOBS_DIR / "polars_job.py"), str(source), str(output)], output
    if tool == "datatrove":
        output = work / "datatrove"
        return [str(peer_python(tool)), str(PEERS[tool]["job"]), str(source), str(output),
                str(work / "datatrove-work"), "--workers", str(WORKERS)], output
    if tool == "datajuicer":
        output = work / "datajuicer.parquet"
        return [str(peer_python(tool)), str(PEERS[tool]["job"]), str(source), str(output),
                str(work / "datajuicer-work"), "--np", str(WORKERS)], output
    raise ValueError(f"unknown tool {tool!r}: one of {TOOLS}")


def read_output(output: Path) -> pl.DataFrame:
    """(url, alt_text) of a job's output, a Parquet file or a folder of them."""
    pattern = str(output / "*.parquet") if output.is_dir() else str(output)
    return pl.read_parquet(pattern, columns=["url", "alt_text"])


def clean(work: Path) -> None:
    for path in work.iterdir():
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def compare(reference: pl.DataFrame, other: pl.DataFrame) -> dict[str, Any]:
    """How ``other`` agrees with ``reference`` (curate's rows): same rows, or only the same urls
    (a different survivor kept for some urls), or different."""
    same_urls = reference.height == other.height and reference["url"].sort().equals(other["url"].sort())
    if not same_urls:
        return {"same": "no", "rows": other.height, "reference_rows": reference.height}
    joined = reference.join(other, on="url", suffix="_other")
    differing = joined.filter(pl.col("alt_text").ne_missing(pl.col("alt_text_other"))).height
    return {"same": "rows" if differing == 0 else "urls", "other_survivor": differing}


def run_tool(tool: str, source: Path, work: Path, timeout: float) -> tuple[Measurement | None, pl.DataFrame | None, str | None]:
    clean(work)
    argv, output = command(tool, source, work)
    try:
        measured = measure(["timeout", str(int(timeout)), *argv])
    except CommandFailed as exc:
        clean(work)
        if str(exc).split(" exited ")[-1].startswith("124"):
            return None, None, f"stopped after {timeout:.0f} s"
        return None, None, str(exc)[-2000:]
    frame = read_output(output)
    clean(work)  # outputs and scratch of 2M rows: hundreds of MB per tool
    return measured, frame, None


def bench_size(rows: int, repeats: int, tools: list[str], timeout: float,
               projected: dict[str, float]) -> dict[str, Any]:
    source = input_parts(rows)
    work = tmp_dir("peers", str(rows))
    runs: dict[str, list[Measurement]] = {tool: [] for tool in tools}
    frames: dict[str, pl.DataFrame] = {}
    errors: dict[str, str] = {}
    for tool in tools:
        if projected.get(tool, 0) * rows > timeout:
            errors[tool] = (f"skipped: {projected[tool] * rows:.0f} s projected from a smaller size "
                            f"(over the {timeout:.0f} s limit)")
    for _ in range(repeats):  # alternate, so a burst of load from elsewhere hits every tool
        for tool in tools:
            if tool in errors:
                continue
            measured, frame, error = run_tool(tool, source, work, timeout)
            if error:
                errors[tool] = error
                continue
            runs[tool].append(measured)
            frames[tool] = frame
    if "curate" not in frames:
        raise RuntimeError(f"curate failed at {rows} rows: {errors.get('curate')}")
    reference = frames["curate"]
    results: dict[str, Any] = {}
    for tool in tools:
        if not runs[tool]:
            results[tool] = {"error": errors[tool]}
            continue
        check = compare(reference, frames[tool]) if tool != "curate" else {"same": "rows"}
        expected = "urls" if tool == "datajuicer" else "rows"  # see the notes
        if check["same"] == "no" or (expected == "rows" and check["same"] != "rows"):
            raise AssertionError(f"{tool} disagrees with curate at {rows} rows: {check}")
        seconds = median([m.seconds for m in runs[tool]])
        projected[tool] = seconds / rows
        results[tool] = {
            "seconds": seconds,
            "cpu_seconds": median([m.cpu_seconds for m in runs[tool]]),
            "peak_rss_mb": median([m.peak_rss_mb for m in runs[tool]]),
            "rows_out": frames[tool].height,
            "check": check,
            "runs": [m.facts() for m in runs[tool]],
        }
    return {"rows": rows, "repeats": repeats, "input_files": len(list(source.glob("*.parquet"))), "tools": results}


def run(scale: str) -> dict[str, Any]:
    override = os.environ.get("CURATE_BENCH_REPEATS")
    only_rows = os.environ.get("CURATE_BENCH_ROWS")
    timeout = float(os.environ.get("CURATE_BENCH_PEER_TIMEOUT", TIMEOUT_SECONDS))
    versions: dict[str, Any] = {"curate": {"version": "this checkout"}, "polars": {"version": pl.__version__}}
    tools = ["curate", "polars"]
    for tool in PEERS:
        versions[tool] = ensure_peer(tool)
        if "error" not in versions[tool]:
            tools.append(tool)
    projected: dict[str, float] = {}  # seconds per row at the last size each tool ran
    sizes = []
    for rows in SIZES[scale]:
        if only_rows and rows != int(only_rows):
            continue
        size = bench_size(rows, int(override) if override else REPEATS[rows], tools, timeout, projected)
        (tmp_dir("peers") / f"result-{rows}.json").write_text(json.dumps(size, indent=2))
        sizes.append(size)
    if not sizes:
        raise ValueError(f"CURATE_BENCH_ROWS={only_rows} is not a size of scale {scale!r}: {SIZES[scale]}")

    table = []
    for size in sizes:
        for tool in TOOLS:
            result = size["tools"].get(tool) or {"error": versions[tool].get("error", "not run")}
            version = versions[tool].get("version", "-")
            if "error" in result:
                table.append({"rows": size["rows"], "tool": tool, "version": version,
                              "seconds (median)": None, "CPU seconds": None, "peak RSS MB": None,
                              "rows out": None, "same as curate": result["error"][:80]})
                continue
            check = result["check"]
            table.append({
                "rows": size["rows"], "tool": tool, "version": version,
                "seconds (median)": round(result["seconds"], 1),
                "CPU seconds": round(result["cpu_seconds"], 1),
                "peak RSS MB": round(result["peak_rss_mb"]),
                "rows out": result["rows_out"],
                "same as curate": {"rows": "same rows", "urls": f"same urls, {check.get('other_survivor')} other survivors"}[check["same"]],
            })
    headline: dict[str, Any] = {}
    for size in sizes:
        done = size["tools"]
        if "polars" in done and "seconds" in done["polars"]:
            for tool in ("curate", "datatrove", "datajuicer"):
                if tool in done and "seconds" in done[tool]:
                    headline[f"{tool}/polars time at {size['rows']:,} rows"] = round(
                        done[tool]["seconds"] / done["polars"]["seconds"], 1)
    return {
        "headline": headline,
        "table": table,
        "notes": notes(),
        "versions": versions,
        "how": {tool: PEERS[tool]["how"] for tool in PEERS}
        | {"curate": f"curate run, local executor, workers={WORKERS}", "polars": "benchmarks/peers/polars_job.py"},
        "sizes": sizes,
        "spec": spec(Path("SOURCE"), Path("OUTPUT"), Path("RUN_DIR")),
    }


def notes() -> list[str]:
    return [
        f"input: benchmarks/synthetic.py's url/alt-text table, split into files of {PART_ROWS:,} rows "
        "(DataTrove reads whole files per task; the others read the same files)",
        "curate, Polars and DataTrove keep exactly the same rows (checked). DataTrove keeps the first "
        "occurrence through document_priority = 65535 - file index (its ties go to the lowest index in a task)",
        "Data-Juicer's document_deduplicator keeps the first occurrence in its load order, and its "
        "ParquetFormatter lists files in directory order (Path.rglob, unsorted): same row count and the "
        "same urls are checked, and how many urls kept another of their rows is reported",
        "Data-Juicer 1.6.1 installs ray and torch at its first run (lazy loader); the benchmark installs them "
        "with it, so no measured run installs anything",
        "sampling left out: the tools' samplers draw different rows",
    ]
