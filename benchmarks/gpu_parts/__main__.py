"""Run one GPU-session part on its own, or list them.

    python -m benchmarks.gpu_parts                      # the parts, in the order the session runs them
    python -m benchmarks.gpu_parts cores --smoke        # a tiny CPU run (what tests/benchmarks do here)
    python -m benchmarks.gpu_parts cores --seconds 60 --json /tmp/cores.json

The session (``benchmarks.gpu_session``) runs each part this way, in a child process with a hard
time limit, so a part that hangs or crashes costs only its own budget.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from benchmarks.gpu_parts import load_part, part_names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_parts", description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", help="a module of benchmarks/gpu_parts (none: list them)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, CPU: checks the part runs")
    parser.add_argument("--seconds", type=float, default=None, help="the budget (default: the part's SECONDS)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/gpu_session_out")),
                        help="where the part writes its files")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    if not args.name:
        for name in part_names():
            print(name)
        return 0
    if args.name not in part_names():
        print(f"error: no GPU part {args.name!r} in benchmarks/gpu_parts (there are: "
              f"{', '.join(part_names()) or 'none'})", file=sys.stderr)
        return 2
    module = load_part(args.name)
    seconds = float(args.seconds if args.seconds is not None else getattr(module, "SECONDS", 60))
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        result = module.run(args.out, seconds, smoke=args.smoke)
    except Exception as error:  # the session records it and carries on with the next part
        import traceback

        traceback.print_exc()
        result = {"error": f"{type(error).__name__}: {error}"}
    result = dict(result or {})
    result.setdefault("part_seconds", round(time.perf_counter() - started, 1))
    text = json.dumps(result, indent=1, default=str)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
