#!/usr/bin/env bash
# Start the GPU container with a persistent CUDA JIT cache and model cache.
#   ./run.sh [--dry-run] [--port N] [--image NAME] [--gpus SPEC] [--name NAME]
set -euo pipefail

port=8003
image=transcription-service:gpu
gpus=all
name=transcription-service
dry_run=false
data_root=${XDG_DATA_HOME:-$HOME/.local/share}/transcription-service

while (($#)); do
  case "$1" in
    --dry-run) dry_run=true ;;
    --port) port=$2; shift ;;
    --image) image=$2; shift ;;
    --gpus) gpus=$2; shift ;;
    --name) name=$2; shift ;;
    -h|--help) sed -n '2,3p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

cuda_cache=${CUDA_CACHE_HOST_DIR:-$data_root/cuda-cache}
model_cache=${MODEL_CACHE_HOST_DIR:-$data_root/models}

cmd=(docker run -d --name "$name" --gpus "$gpus" --ipc=host -p "$port:8003"
  -e CUDA_CACHE_DISABLE=0 -e CUDA_CACHE_PATH=/cuda-cache
  -e CUDA_CACHE_MAXSIZE=2147483648 -e CUDA_FORCE_PTX_JIT=0
  -v "$cuda_cache:/cuda-cache" -v "$model_cache:/models")
# Passed by name only, so the token never appears on a command line or in --dry-run output.
if [[ -n "${HF_TOKEN:-}" ]]; then cmd+=(-e HF_TOKEN); fi
cmd+=("$image")

if $dry_run; then
  printf '%q ' "${cmd[@]}"; echo
  exit 0
fi
mkdir -p "$cuda_cache" "$model_cache"
exec "${cmd[@]}"
