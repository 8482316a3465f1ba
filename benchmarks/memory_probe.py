"""Where a run's memory goes: ``curate run`` in this process, with a thread that logs, every
``--interval`` seconds, the process's RSS next to DuckDB's own accounting (``duckdb_memory()``
of every table-step connection, by tag: hash tables, windows, sorts, and what each has spilled).

    python benchmarks/memory_probe.py --log probe.jsonl -- run SPEC --quiet --no-cache

Each line of the log: ``[seconds, rss_mb, {step label: {tag: [memory_mb, spilled_mb]}}]``. What
RSS holds beyond DuckDB's share is Python, Polars and Arrow. Diagnostics only: it wraps
``StepContext.duckdb`` to keep a cursor on each connection (and to hold a connection's ``close`` while
its cursor is being sampled), which changes nothing a step computes.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any


def _rss_mb() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS"))
    return int(line.split()[1]) // 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", required=True, help="where to write one JSON line per sample")
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("curate_args", nargs=argparse.REMAINDER, help="-- then the curate command line")
    args = parser.parse_args(argv)
    curate_args = args.curate_args[1:] if args.curate_args[:1] == ["--"] else args.curate_args

    import curate.step as step_module

    cursors: list[tuple[str, Any]] = []
    lock = threading.Lock()
    opened = step_module.StepContext.duckdb

    class Watched:
        """The step's connection, whose ``close`` waits for a sample in flight: DuckDB refuses to
        close a connection while one of its cursors runs a query (ResourceInUseException)."""

        def __init__(self, con: Any):
            self._con = con

        def __getattr__(self, name: str) -> Any:
            return getattr(self._con, name)

        def close(self) -> None:
            with lock:
                self._con.close()

    def duckdb_with_cursor(self: step_module.StepContext) -> Any:
        con = opened(self)
        with lock:
            cursors.append((self.label, con.cursor()))
        return Watched(con)

    step_module.StepContext.duckdb = duckdb_with_cursor  # type: ignore[method-assign]
    log = open(args.log, "w")

    def sample() -> None:
        started = time.time()
        while True:
            parts: dict[str, dict[str, list[int]]] = {}
            with lock:  # no step closes its connection while its cursor is queried
                for label, cursor in cursors:
                    try:
                        rows = cursor.sql("SELECT tag, memory_usage_bytes, temporary_storage_bytes FROM duckdb_memory() "
                                          "WHERE memory_usage_bytes > 0 OR temporary_storage_bytes > 0").fetchall()
                    except Exception:  # noqa: BLE001 - a closed connection: nothing to report
                        continue
                    if rows:
                        parts[label] = {tag: [used >> 20, spilled >> 20] for tag, used, spilled in rows}
            log.write(json.dumps([round(time.time() - started, 1), _rss_mb(), parts]) + "\n")
            log.flush()
            time.sleep(args.interval)

    threading.Thread(target=sample, daemon=True).start()
    from curate.cli import main as curate_main

    return curate_main(curate_args)


if __name__ == "__main__":
    sys.exit(main())
