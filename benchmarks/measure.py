"""Helpers every benchmark shares: run a command and measure it, describe the machine, find
the cache and scratch directories.

Peak memory is measured two ways, because they answer different questions:

- ``peak_rss_bytes``: the kernel's high-water mark (``ru_maxrss`` from ``wait4``) of the
  command's process, or of the largest process of its tree (orphans included: see the
  launcher). Exact, but per process: a pool
  of four workers at 1 GB each reads as 1 GB. The command is started by a tiny launcher
  process, because Linux counts the memory a process had before ``exec`` — a fork of this
  (large) benchmark process would report at least this process's size.
- ``tree_rss_bytes``: the sum of resident memory over the command and all its descendants,
  sampled every ``interval`` seconds from ``/proc``. Sees worker pools; can miss a spike
  shorter than the interval.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCHMARKS_DIR.parent
DATA_DIR = BENCHMARKS_DIR / ".data"  # generated inputs, reused between runs (gitignored)
RESULTS_DIR = BENCHMARKS_DIR / "results"
TMP_DIR = RESULTS_DIR / "tmp"  # run directories and outputs of one benchmark run (gitignored)

LIBRARIES = ("curate", "polars", "duckdb", "pyarrow", "numpy", "pydantic")


# Runs argv[2:] and writes its rusage to argv[1]. Started with -I -S, so it stays a few MB.
# It makes itself the subreaper of the command's tree: a process whose parent exits without
# waiting for it (a multiprocessing forkserver's workers, say) is re-parented to the launcher
# instead of to init, so the launcher reaps it and RUSAGE_CHILDREN counts its CPU time. The
# wall time stops when the command itself exits; orphans still running are waited for up to
# ORPHAN_WAIT seconds, for their CPU time only.
_LAUNCHER = """
import ctypes, json, os, resource, sys, time
try:
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
except (OSError, AttributeError):
    pass
started = time.perf_counter()
pid = os.posix_spawnp(sys.argv[3], sys.argv[3:], os.environ)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
code = os.waitstatus_to_exitcode(status)
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        if os.waitpid(-1, os.WNOHANG)[0] == 0:
            time.sleep(0.02)
    except ChildProcessError:
        break
total = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as handle:
    json.dump({"maxrss_kib": total.ru_maxrss, "cpu_seconds": total.ru_utime + total.ru_stime,
               "command_cpu_seconds": usage.ru_utime + usage.ru_stime, "seconds": seconds,
               "returncode": code}, handle)
sys.exit(code if code >= 0 else 128 - code)
"""
ORPHAN_WAIT = 10.0


@dataclass
class Measurement:
    seconds: float  # wall clock
    peak_rss_bytes: int
    tree_rss_bytes: int
    returncode: int
    stdout: str
    stderr: str
    # user + system time of the command and its children: on a shared machine, steadier than
    # wall time (a busy neighbour stretches the wall clock, not the work done)
    cpu_seconds: float = 0.0

    @property
    def peak_rss_mb(self) -> float:
        return round(max(self.peak_rss_bytes, self.tree_rss_bytes) / 2**20, 1)

    def facts(self) -> dict[str, Any]:
        """What goes into a result file (no captured output)."""
        out = asdict(self)
        del out["stdout"], out["stderr"]
        out["seconds"] = round(self.seconds, 3)
        out["cpu_seconds"] = round(self.cpu_seconds, 3)
        out["peak_rss_mb"] = self.peak_rss_mb
        return out


class CommandFailed(RuntimeError):
    pass


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                out.extend(int(p) for p in handle.read().split())
    except OSError:
        pass
    return out


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and every descendant, now."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += _rss_bytes(current)
        stack.extend(_children(current))
    return total


def measure(command: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
            interval: float = 0.05, check: bool = True) -> Measurement:
    """Run ``command`` to completion; wall time, peak memory and its output."""
    full_env = {**os.environ, **(env or {})}
    with tempfile.TemporaryDirectory(prefix="curate-bench-") as scratch:
        usage_file = Path(scratch) / "usage.json"
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-I", "-S", "-c", _LAUNCHER, str(usage_file), str(ORPHAN_WAIT),
                                    *command],
                                   cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        result = _follow(process, started, interval)
        if usage_file.exists():
            usage = json.loads(usage_file.read_text())
            result.peak_rss_bytes = usage["maxrss_kib"] * 1024  # Linux reports KiB
            result.cpu_seconds = usage["cpu_seconds"]
            result.seconds = usage["seconds"]
            result.returncode = usage["returncode"]
        elif result.returncode == 0:
            result.returncode = 127  # the launcher could not start the command
    if check and result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-20:])
        raise CommandFailed(f"{' '.join(command)} exited {result.returncode}:\n{tail}")
    return result


def _follow(process: subprocess.Popen, started: float, interval: float) -> Measurement:
    peak_tree = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not stop.is_set():
            peak_tree = max(peak_tree, tree_rss(process.pid))
            stop.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # Drain the pipes in threads, so a chatty command cannot block on a full pipe.
    captured: dict[str, str] = {}
    readers = [
        threading.Thread(target=lambda name=name, pipe=pipe: captured.__setitem__(name, pipe.read()), daemon=True)
        for name, pipe in (("stdout", process.stdout), ("stderr", process.stderr))
    ]
    for reader in readers:
        reader.start()
    returncode = process.wait()
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join()
    for reader in readers:
        reader.join()
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()
    return Measurement(
        seconds=seconds,
        peak_rss_bytes=0,
        tree_rss_bytes=peak_tree,
        returncode=returncode,
        stdout=captured.get("stdout", ""),
        stderr=captured.get("stderr", ""),
    )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass(frozen=True)
class ModelBench:
    """The settings every model benchmark reads from the environment (see benchmarks/README.md)."""

    rows: int
    batch_size: int
    repeats: int
    threads: int


def model_bench(default_rows: int, model: str = "CLIP") -> ModelBench:
    """``CURATE_BENCH_ROWS``, ``CURATE_BENCH_<model>_BATCH`` (256), ``CURATE_BENCH_REPEATS`` (3) and
    ``CURATE_BENCH_<model>_THREADS`` (1), with torch set to that many threads: one thread is
    steadier than two on a shared 2-core machine."""
    import torch

    settings = ModelBench(int(os.environ.get("CURATE_BENCH_ROWS", default_rows)),
                          int(os.environ.get(f"CURATE_BENCH_{model}_BATCH", "256")),
                          int(os.environ.get("CURATE_BENCH_REPEATS", "3")),
                          int(os.environ.get(f"CURATE_BENCH_{model}_THREADS", "1")))
    torch.set_num_threads(settings.threads)
    return settings


def alternate(paths: dict[str, Any], repeats: int) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Run each of ``paths`` (name → no-argument function) once per repeat, alternating, so
    drift in the machine's load hits all alike: (seconds per repeat, last result) by name."""
    import time

    seconds: dict[str, list[float]] = {name: [] for name in paths}
    results: dict[str, Any] = {}
    for _ in range(repeats):
        for name, function in paths.items():
            started = time.perf_counter()
            results[name] = function()
            seconds[name].append(time.perf_counter() - started)
    return seconds, results


def throughput_rows(rows: int, seconds: dict[str, list[float]], unit: str = "images/s") -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Median throughput by name, and the benchmark table's rows for them."""
    throughput = {name: rows / median(values) for name, values in seconds.items()}
    table = [{"path": name, "rows": rows, "median seconds": round(median(values), 2),
              unit: round(throughput[name], 1), "seconds per repeat": [round(v, 2) for v in values]}
             for name, values in seconds.items()]
    return throughput, table


def step_versus_raw(rows: int, seconds: dict[str, list[float]], results: dict[str, Any], step: str, raw: str,
                    tolerance: float, what: str) -> tuple[float, float, dict[str, float], list[dict[str, Any]]]:
    """A step timed against the raw library loop by :func:`alternate`: refuse to report a speed
    when their outputs (arrays) differ by more than ``tolerance``; else (largest difference,
    step / raw throughput, throughput by name, table rows)."""
    import numpy as np

    difference = float(np.max(np.abs(results[step] - results[raw])))
    if difference > tolerance:
        raise RuntimeError(f"the step's {what} differ from the raw loop's by up to {difference:.4f}")
    throughput, table = throughput_rows(rows, seconds)
    return difference, throughput[step] / throughput[raw], throughput, table


def _meminfo_bytes(field: str) -> int | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=REPO_DIR, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine_facts() -> dict[str, Any]:
    """Enough to tell whether two result files are comparable."""
    total = _meminfo_bytes("MemTotal")
    available = _meminfo_bytes("MemAvailable")
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "ram_gb": round(total / 2**30, 1) if total else None,
        "ram_available_gb": round(available / 2**30, 1) if available else None,
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "libraries": library_versions(),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no", "--", "curate", "plugins")),
    }


def data_dir(*parts: str) -> Path:
    path = DATA_DIR.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def world_dir(benchmark: str, name: str) -> Path:
    """Where a benchmark caches a generated world: the world version is in the name, so a newer
    curate_world generates a fresh one instead of refusing the old (``generate_world`` never
    overwrites)."""
    from curate_world.params import WORLD_VERSION

    return data_dir(benchmark, f"{name}-v{WORLD_VERSION}")


def tmp_dir(*parts: str) -> Path:
    path = TMP_DIR.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def python() -> str:
    """The interpreter running the benchmarks, for subprocesses (the same venv)."""
    return sys.executable


def curate_command() -> list[str]:
    """The ``curate`` command of this interpreter's environment, whatever is on PATH."""
    script = Path(python()).parent / "curate"
    return [str(script)] if script.exists() else [python(), "-m", "curate.cli"]
