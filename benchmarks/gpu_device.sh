#!/usr/bin/env bash
# The one command for a lent GPU device (run from the repository root, with .whl carried):
#
#   bash benchmarks/gpu_device.sh
#
# Unpacks .whl/site.tar.xz (built here by benchmarks/gpu_prepare.sh: what the device image lacks)
# into /tmp/site, gives the checkout the package metadata its plugins are found by (entry points,
# without installing it), checks the imports, then runs benchmarks.gpu_session, which writes
# $OUT/gpu_session.json after each part (and the run's log to $OUT/gpu_session.log).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-/tmp/gpu_out}
SITE=${SITE:-/tmp/site}
mkdir -p "$OUT" "$SITE"
# The interpreter that has the device's torch (python3, else python).
PY=${PY:-$(for p in python3 python; do "$p" -c "import torch" 2>/dev/null && { echo "$p"; break; }; done)}
PY=${PY:-python3}
started=$(date +%s)

if [ -f .whl/site.tar.xz ]; then
  xz -dc -T0 .whl/site.tar.xz | tar -C "$SITE" -xf - || { echo "unpacking .whl/site.tar.xz failed"; exit 2; }
else
  echo "no .whl/site.tar.xz: run benchmarks/gpu_prepare.sh here and carry .whl" >&2
fi
for wheel in .whl/*.whl; do  # small pure-Python wheels beside the archive (see gpu_prepare.sh)
  [ -e "$wheel" ] && { "$PY" -m zipfile -e "$wheel" "$SITE" || echo "unpacking $wheel failed"; }
done
echo "unpacked in $(( $(date +%s) - started ))s"

# curate's plugins are found through the entry points of an installed distribution: a minimal
# dist-info for this checkout, written from pyproject.toml (nothing is installed or built).
"$PY" - "$SITE" <<'PYEOF'
import pathlib, sys, tomllib
site = pathlib.Path(sys.argv[1])
project = tomllib.loads(pathlib.Path("pyproject.toml").read_text())["project"]
info = site / f"curate-{project.get('version', '0.0.0')}.dist-info"
info.mkdir(parents=True, exist_ok=True)
(info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: curate\nVersion: {project.get('version', '0.0.0')}\n")
lines = []
for group, entries in project.get("entry-points", {}).items():
    lines.append(f"[{group}]")
    lines += [f"{name} = {target}" for name, target in entries.items()]
lines.append("[console_scripts]")
lines += [f"{name} = {target}" for name, target in project.get("scripts", {}).items()]
(info / "entry_points.txt").write_text("\n".join(lines) + "\n")
PYEOF

# The device's own torch/torchvision/transformers come first only where the carried tree lacks
# them (it carries none of the three).
export PYTHONPATH="$ROOT:$ROOT/plugins:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export OUT
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee "$OUT/nvidia_smi.txt"
"$PY" - <<'PYEOF' 2>&1 | tee "$OUT/imports.txt"
import importlib, sys
print(sys.version.split()[0])
for name in ("torch", "torchvision", "transformers", "polars", "duckdb", "pydantic", "open_clip", "pytest",
             "hypothesis", "curate", "curate_clip.score", "curate_dedup.semantic", "curate_captioner.generate_static"):
    try:
        module = importlib.import_module(name)
        print(f"ok {name} {getattr(module, '__version__', '')}")
    except Exception as error:
        print(f"MISSING {name}: {type(error).__name__}: {error}")
import torch
print("cuda", torch.cuda.is_available(), torch.version.cuda)
PYEOF
"$PY" -m benchmarks.gpu_session 2>&1 | tee "$OUT/gpu_session.log" | grep -v '^ \|^[{}]'
echo "total $(( $(date +%s) - started ))s; report: $OUT/gpu_session.json"
