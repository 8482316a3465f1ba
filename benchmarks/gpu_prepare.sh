#!/usr/bin/env bash
# Builds .whl/site.tar.xz here: what a lent GPU device (Python 3.12, x86_64, its own torch,
# torchvision and transformers, no internet) lacks to run benchmarks/gpu_device.sh, unpacked into
# one site-packages tree, native libraries stripped of debug symbols, xz-compressed. Pinned to the
# versions this checkout is tested with (the main venv's). Prints the archive's size: a device
# call carries at most 64 MiB, the checkout included.
#
#   bash benchmarks/gpu_prepare.sh            # then carry .whl with the device call
set -euo pipefail
cd "$(dirname "$0")/.."
VENV_PY=${VENV_PY:-/work/main/.venv/bin/python}
PYVER=${PYVER:-3.12}
OUTDIR=.whl
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_prepare.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# What the device run imports that the device image lacks: curate's core (polars, pydantic,
# pluggy), open_clip and ftfy (clip_score) and pytest (the GPU tests, run without the suite's
# conftest, which needs duckdb and hypothesis: tests/gpu/ needs neither). Not here, because the
# image has them (transformers needs them): numpy, pyyaml, regex, tqdm, safetensors,
# huggingface_hub, tokenizers, packaging, pillow, typing_extensions, filelock, fsspec. Not here
# for size (a call carries 64 MiB including the checkout, ~29 MiB): duckdb, timm, rich.
PACKAGES="polars polars-runtime-32 pydantic pydantic_core annotated-types typing-inspection pluggy
open_clip_torch ftfy wcwidth pytest iniconfig"
# duckdb (benchmarks/gpu_parts/cores.py: the engine's table steps need it) adds 15.4 MiB of xz
# (2.0.1: a 69 MB stripped .so): with the ~29 MiB checkout and the 31.8 MiB above that is ~76 MiB,
# over a call's 64 MiB, so it is off by default; GPU_PREPARE_DUCKDB=1 adds it for a session that
# can carry it (the size check at the end says whether this one can).
if [ "${GPU_PREPARE_DUCKDB:-0}" = 1 ]; then PACKAGES="$PACKAGES duckdb"; fi

pins=()
for name in $PACKAGES; do
  version=$("$VENV_PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")
  pins+=("$name==$version")
done
echo "pins: ${pins[*]}"
python3 -m pip download --quiet --no-deps --only-binary=:all: --implementation cp --python-version "$PYVER" \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d "$WORK/wheels" "${pins[@]}"
mkdir -p "$WORK/site"
for wheel in "$WORK"/wheels/*.whl; do
  python3 -m zipfile -e "$wheel" "$WORK/site"
done
# Debug symbols are most of a native library's size, and nothing here needs them.
find "$WORK/site" -name '*.so*' -type f -exec strip --strip-unneeded {} + 2>/dev/null || true
find "$WORK/site" -name '__pycache__' -type d -prune -exec rm -rf {} +
rm -rf "$WORK/site"/*/tests 2>/dev/null || true
rm -rf "$OUTDIR" && mkdir -p "$OUTDIR"
tar -C "$WORK/site" -cf - . | xz -${XZ_LEVEL:-9} -T0 > "$OUTDIR/site.tar.xz"
# Small pure-Python wheels stay wheels beside the archive (gpu_device.sh unpacks them after it, so
# they win): typing_extensions, newer than the device image's, which pydantic needs.
extras=()
for name in typing_extensions; do
  extras+=("$name==$("$VENV_PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")")
done
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYVER" --platform any \
  -d "$OUTDIR" "${extras[@]}"
du -b "$OUTDIR/site.tar.xz" | awk '{printf "%s: %.1f MiB\n", $2, $1 / 1048576}'
du -sb "$WORK/site" | awk '{printf "unpacked: %.1f MiB\n", $1 / 1048576}'
# What a device call carries in all: the working tree (tracked and untracked-not-ignored files)
# and .whl; the limit is 64 MiB.
tree=$(git ls-files -co --exclude-standard -z | xargs -0 du -cb 2>/dev/null | awk '$2 == "total" {s += $1} END {print s + 0}')
whl=$(du -sb "$OUTDIR" | awk '{print $1}')
awk -v t="$tree" -v w="$whl" 'BEGIN {total = (t + w) / 1048576;
  printf "carried: checkout %.1f MiB + .whl %.1f MiB = %.1f MiB (limit 64)\n", t / 1048576, w / 1048576, total;
  if (total > 64) { print "OVER the 64 MiB a call carries: drop packages (GPU_PREPARE_DUCKDB=0) or files"; exit 1 } }'
