#!/usr/bin/env bash
# Set up curate in ./.venv: the package, its built-in plugins and what the embedded default needs.
#   ./setup.sh          everything to run specs/quickstart.yaml
#   ./setup.sh --test   plus the test tools (pytest, hypothesis, playwright, ray, diffusers, headless chromium)
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")"

python=${PYTHON:-}
if [ -z "$python" ]; then
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi
    done
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))'; then
    echo "setup.sh: curate needs Python 3.11 or newer; $python is $("$python" --version 2>&1)" >&2
    echo "          set PYTHON=/path/to/python3.11 and run again" >&2
    exit 2
fi

if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }

extras="pipeline"
if [ "${1:-}" = "--test" ]; then
    extras="$extras,train,diffusion,ray,s3,test,digits"
fi
# torch comes first and pinned: this release lies on the machines' disk (pip takes it from there,
# no 3 GB download); an unpinned 'torch' from the extras could ask the index for a newer one.
torch_pins="torch==2.14.1 torchvision==0.29.1"
log=$(mktemp)
if ! pip install $torch_pins >"$log" 2>&1 || ! pip install -e ".[$extras]" $torch_pins >>"$log" 2>&1; then
    grep -v "^WARNING: Location" "$log" >&2
    if grep -q "No space left on device" "$log"; then
        # torch's CUDA build alone is about 5.5 GB: the whole .venv takes about 7.5 GB.
        echo "setup.sh: the disk filled up while installing into $(pwd)/.venv ($(df -h . | awk 'NR==2 {print $4}') free now);" >&2
        echo "          the environment needs about 7.5 GB: free some space (pip's temporary files go to ${TMPDIR:-/tmp}) and run again" >&2
    else
        echo "setup.sh: pip install failed (above)" >&2
    fi
    rm -f "$log"
    exit 1
fi
rm -f "$log"

if [ "${1:-}" = "--test" ] && ! command -v chromium >/dev/null 2>&1; then
    # The report test renders the HTML report in headless Chromium (Debian's package).
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
            || echo "setup.sh: could not install chromium; the browser test will be skipped" >&2
    else
        echo "setup.sh: chromium not found and not root; the browser test will be skipped" >&2
    fi
fi
echo "curate is set up in .venv ($(.venv/bin/curate --version))"
