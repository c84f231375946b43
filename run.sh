#!/usr/bin/env bash
# Start the GPU container with a persistent CUDA JIT cache and model cache.
#
#   ./run.sh [start] [options]    run the service detached (default)
#   ./run.sh prewarm [options]    load + warm every stage once and exit, filling both caches
#
# Options: --port N (8003)  --image NAME (transcription-service:gpu)  --gpus SPEC (all)
#          --name NAME (transcription-service)  --dry-run (print the docker command only)
# Host directories: $CUDA_CACHE_HOST_DIR and $MODEL_CACHE_HOST_DIR, by default under
# ${XDG_DATA_HOME:-~/.local/share}/transcription-service/. HF_TOKEN, if set, is passed by
# name, so its value never appears on a command line or in any output. SHUTDOWN_GRACE_S
# (default 20) is passed on, and Docker's stop timeout is set 10 s past it.
set -euo pipefail

subcommand=start
if (($#)) && [[ $1 != -* ]]; then
  subcommand=$1
  shift
fi
case "$subcommand" in
  start|prewarm) ;;
  *) echo "run.sh: unknown command '$subcommand' (start or prewarm)" >&2; exit 2 ;;
esac

port=8003
image=transcription-service:gpu
gpus=all
name=transcription-service
dry_run=false
while (($#)); do
  case "$1" in
    --dry-run) dry_run=true ;;
    --port|--image|--gpus|--name)
      [[ $# -ge 2 ]] || { echo "run.sh: $1 needs a value" >&2; exit 2; }
      case "$1" in
        --port) port=$2 ;;
        --image) image=$2 ;;
        --gpus) gpus=$2 ;;
        --name) name=$2 ;;
      esac
      shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[[ $port =~ ^[0-9]+$ ]] || { echo "run.sh: --port must be a number" >&2; exit 2; }

grace=${SHUTDOWN_GRACE_S:-20}
[[ $grace =~ ^[0-9]+$ ]] || { echo "run.sh: SHUTDOWN_GRACE_S must be whole seconds" >&2; exit 2; }

data_root=${XDG_DATA_HOME:-$HOME/.local/share}/transcription-service
cuda_cache=${CUDA_CACHE_HOST_DIR:-$data_root/cuda-cache}
model_cache=${MODEL_CACHE_HOST_DIR:-$data_root/models}

# The JIT cache settings are repeated here (the image sets them too) so that an image built
# from another base, such as an NGC one that sets CUDA_FORCE_PTX_JIT=1, still uses the cache.
common=(--gpus "$gpus" --ipc=host
  -e CUDA_CACHE_DISABLE=0 -e CUDA_CACHE_PATH=/cuda-cache
  -e CUDA_CACHE_MAXSIZE=2147483648 -e CUDA_FORCE_PTX_JIT=0
  -v "$cuda_cache:/cuda-cache" -v "$model_cache:/models")
if [[ -n "${HF_TOKEN:-}" ]]; then common+=(-e HF_TOKEN); fi

if [[ $subcommand == prewarm ]]; then
  cmd=(docker run --rm "${common[@]}" "$image" prewarm)
else
  # The service drains on SIGTERM for SHUTDOWN_GRACE_S, then exits: Docker must wait that long.
  cmd=(docker run -d --name "$name" --restart unless-stopped -p "$port:8003"
    --stop-timeout "$((grace + 10))" -e SHUTDOWN_GRACE_S="$grace" "${common[@]}" "$image")
fi

if $dry_run; then
  printf '%q ' "${cmd[@]}"
  echo
  exit 0
fi
mkdir -p "$cuda_cache" "$model_cache"
exec "${cmd[@]}"
