"""Run curate's benchmarks: ``python -m benchmarks`` (or ``python benchmarks/run.py``).

A benchmark is a module ``benchmarks/bench_<name>.py`` with a function ``run(scale) -> dict``;
see benchmarks/README.md for the convention. Each result is printed and saved, with facts
about the machine, to ``benchmarks/results/<name>.json`` (one entry per scale).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

if __package__ in (None, ""):  # run as a script: make `import benchmarks` work
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.measure import BENCHMARKS_DIR, RESULTS_DIR, machine_facts

SCALES = ("small", "full")
PREFIX = "bench_"


@dataclass
class Benchmark:
    name: str
    module: str  # importable name, e.g. benchmarks.bench_metadata

    def load(self) -> ModuleType:
        module = importlib.import_module(self.module)
        if not callable(getattr(module, "run", None)):
            raise TypeError(f"{self.module} has no run(scale) function")
        return module


def discover(directory: Path = BENCHMARKS_DIR, package: str = "benchmarks") -> list[Benchmark]:
    """Every ``bench_*.py`` in ``directory``, by name. Importing waits until a benchmark runs,
    so one with a missing dependency does not stop the others."""
    return [
        Benchmark(path.stem[len(PREFIX):], f"{package}.{path.stem}")
        for path in sorted(directory.glob(f"{PREFIX}*.py"))
    ]


def select(benchmarks: list[Benchmark], only: list[str] | None) -> list[Benchmark]:
    if not only:
        return benchmarks
    known = {b.name: b for b in benchmarks}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(known) or 'none'}")
    return [known[name] for name in only]


def run_one(benchmark: Benchmark, scale: str) -> dict[str, Any]:
    """Run a benchmark and wrap its result with what makes it comparable. Never raises."""
    entry: dict[str, Any] = {"benchmark": benchmark.name, "scale": scale, "machine": machine_facts()}
    started = time.perf_counter()
    try:
        module = benchmark.load()
        entry["description"] = _description(module)
        entry["result"] = module.run(scale)
        entry["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 - report it and carry on with the other benchmarks
        entry["status"] = "failed"
        entry["error"] = f"{type(exc).__name__}: {exc}"
        entry["traceback"] = traceback.format_exc()
    entry["seconds"] = round(time.perf_counter() - started, 2)
    return entry


def _description(module: ModuleType) -> str:
    text = getattr(module, "DESCRIPTION", None) or (module.__doc__ or "").strip()
    return text.split("\n\n")[0].replace("\n", " ").strip()


def save(entry: dict[str, Any], results_dir: Path = RESULTS_DIR) -> Path:
    """Write ``<name>.json``, keeping the other scales' entries already there."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{entry['benchmark']}.json"
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            data = {}
    data.setdefault("benchmark", entry["benchmark"])
    data.setdefault("scales", {})[entry["scale"]] = entry
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)
    return path


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "-" if value is None else str(value)


def format_table(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns)
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths)))

    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def report(entry: dict[str, Any]) -> str:
    machine = entry["machine"]
    title = (f"== {entry['benchmark']} ({entry['scale']}) — {entry['status']} in {entry['seconds']:.1f} s "
             f"on {machine['cores']} cores, {machine['ram_gb']} GB, load {machine['load_average']}")
    lines = [title]
    if entry.get("description"):
        lines.append(entry["description"])
    if entry["status"] != "ok":
        lines.append(entry.get("traceback") or entry.get("error", ""))
        return "\n".join(lines)
    result = entry.get("result") or {}
    if result.get("table"):
        lines += ["", format_table(result["table"])]
    for title, rows in (result.get("tables") or {}).items():
        if rows:
            lines += ["", title, format_table(rows)]
    headline = result.get("headline") or {}
    if headline:
        width = max(len(k) for k in headline)
        lines += [""] + [f"{k.ljust(width)}  {_cell(v)}" for k, v in headline.items()]
    for note in result.get("notes") or []:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="Run curate's benchmarks.")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this benchmark (repeat, or comma-separate, for several)")
    parser.add_argument("--scale", choices=SCALES, default="small",
                        help="small: a quick run; full: the sizes worth quoting (default: small)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--no-save", action="store_true", help=f"do not write {RESULTS_DIR.name}/<name>.json")
    args = parser.parse_args(argv)

    benchmarks = discover()
    if args.list:
        for benchmark in benchmarks:
            try:
                summary = _description(benchmark.load())
            except Exception as exc:  # noqa: BLE001 - a broken module is listed, not fatal
                summary = f"(cannot import: {type(exc).__name__}: {exc})"
            print(f"{benchmark.name:16} {summary}")
        return 0
    only = [name.strip() for group in args.only or [] for name in group.split(",") if name.strip()]
    failed = 0
    for benchmark in select(benchmarks, only):
        print(f"running {benchmark.name} ({args.scale})…", file=sys.stderr, flush=True)
        entry = run_one(benchmark, args.scale)
        print(report(entry), flush=True)
        if not args.no_save:
            print(f"saved {save(entry)}\n")
        failed += entry["status"] != "ok"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
