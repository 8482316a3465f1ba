"""Parts of the lent-GPU session (`benchmarks/gpu_device.sh`), one module each.

A part is `benchmarks/gpu_parts/<name>.py` with:

- `SECONDS: int` — what it may spend on an H200 with 16 CPU cores (the session's budget is shared);
- `def run(out: pathlib.Path, seconds: float, smoke: bool = False) -> dict` — does its work within
  `seconds`, writes any files under `out`, returns a JSON-serialisable result. `smoke=True` is a
  tiny CPU-only run for testing here (`python -m benchmarks.gpu_parts <name> --smoke`).
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).parent


def part_names() -> list[str]:
    """The parts, in the order the session runs them (by name)."""
    return sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if not m.name.startswith("_"))


def load_part(name: str) -> ModuleType:
    return importlib.import_module(f"benchmarks.gpu_parts.{name}")
