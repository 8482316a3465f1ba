"""Parts of the lent-GPU session (`benchmarks/gpu_device.sh`), one module each.

A part is `benchmarks/gpu_parts/<name>.py` with:

- `SECONDS: int` — what it may spend on an H200 with 16 CPU cores (the session's budget is shared);
- `def run(out: pathlib.Path, seconds: float, smoke: bool = False) -> dict` — does its work within
  `seconds`, writes any files under `out`, returns a JSON-serialisable result. `smoke=True` is a
  tiny CPU-only run for testing here (`python -m benchmarks.gpu_parts <name> --smoke`).
"""
