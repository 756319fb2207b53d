#!/bin/sh
# Set up .venv for this project, then install it (editable) with the extras named as arguments.
# A torch the user already has is kept (the venv sees system packages); on a machine without an
# NVIDIA GPU, torch comes as the CPU build, never as multi-GB CUDA wheels.
set -e
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv --system-site-packages .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1; then
        .venv/bin/python -m pip install --quiet torch
    else
        # the CPU index (2.13.0+cpu); --retries 0 so that a machine without it falls back at once
        .venv/bin/python -m pip install --quiet --retries 0 "torch==2.13.0" --extra-index-url https://download.pytorch.org/whl/cpu
    fi
fi
extras=$(echo "$*" | tr ' ' ',')
stamp=".venv/.installed-$(cat pyproject.toml | cksum | cut -d' ' -f1)-${extras:-base}"
if [ ! -f "$stamp" ]; then
    case ",$extras," in *,augment,*)
        # torchvision pins torch exactly: its release for this torch (0.N+15 for 2.N) first, so that pip
        # keeps the torch; for a CPU torch, its CPU build (where that index is out of reach, PyPI's)
        torch=$(.venv/bin/python -c 'import torch; print(torch.__version__)')
        minor=$(echo "$torch" | cut -d. -f2)
        case "$torch" in *+cpu) index="--extra-index-url https://download.pytorch.org/whl/cpu" ;; *) index="" ;; esac
        .venv/bin/python -m pip install --quiet --retries 0 "torchvision==0.$((minor + 15)).*" $index
    esac
    .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
    touch "$stamp"
fi
