#!/usr/bin/env bash
# Start the service on this machine (no Docker): install once, then serve on $PORT (8003).
# With no GPU and no network it runs the bundled multilingual Whisper base on the CPU.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$repo/scripts/bootstrap.sh" runtime

# The same persistent CUDA JIT cache the container uses (run.sh): PTX is compiled to SASS
# once per machine, not at every start. Harmless without a GPU.
export CUDA_CACHE_DISABLE=0
export CUDA_CACHE_PATH=${CUDA_CACHE_PATH:-$HOME/.cache/transcription-service/cuda}
export CUDA_CACHE_MAXSIZE=${CUDA_CACHE_MAXSIZE:-2147483648}
export CUDA_FORCE_PTX_JIT=0
mkdir -p "$CUDA_CACHE_PATH"

# The Blackwell capability spoof (patches/sitecustomize.py), as in the image.
export PYTHONPATH="$repo/patches${PYTHONPATH:+:$PYTHONPATH}"

cd "$repo"
exec "$repo/.venv/bin/python" -m app
