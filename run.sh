#!/usr/bin/env bash
# Start the GPU container with a persistent CUDA JIT cache and model cache, on Docker or Podman.
#
#   ./run.sh [start] [options]    run the service detached; waits until it answers (or shows why not)
#   ./run.sh prewarm [options]    load + warm every stage once and exit, filling both caches
#
# Options: --port N (8003)  --image NAME (transcription-service:gpu)  --name NAME (transcription-service)
#          --gpus SPEC (all; a count, device=0,1, or none for the CPU)
#          -e NAME[=VALUE]   a setting for the service (docs/configuration.md); NAME alone passes
#                            this shell's value by name, so a secret never appears on a command line
#          --env-file FILE   settings from a file, one NAME=VALUE a line
#          --dry-run (print the command only)   --no-wait (start and return at once)
# Environment: DOCKER (the container CLI: docker when its engine answers, else podman),
# CUDA_CACHE_HOST_DIR and MODEL_CACHE_HOST_DIR (host folders; by default under
# ${XDG_DATA_HOME:-~/.local/share}/transcription-service/), HF_TOKEN (passed by name if set),
# SHUTDOWN_GRACE_S (default 20; the engine's stop timeout is set 10 s past it).
#
# The service runs as the owner of the cache folders, so it can always write them and the files
# stay yours. Folders run.sh creates belong to you, or to the image's user (10001) when you are
# root: the service never runs as root.
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
wait_ready=true
settings=()
while (($#)); do
  case "$1" in
    --dry-run) dry_run=true ;;
    --no-wait) wait_ready=false ;;
    --port|--image|--gpus|--name|-e|--env|--env-file)
      [[ $# -ge 2 ]] || { echo "run.sh: $1 needs a value" >&2; exit 2; }
      case "$1" in
        --port) port=$2 ;;
        --image) image=$2 ;;
        --gpus) gpus=$2 ;;
        --name) name=$2 ;;
        -e|--env)
          # The container always listens on 8003 on all its interfaces: --port moves the host side.
          case "${2%%=*}" in
            PORT|HOST) echo "run.sh: set the host port with --port, not ${2%%=*}" >&2; exit 2 ;;
            ""|*[!A-Za-z0-9_]*) echo "run.sh: -e takes NAME or NAME=VALUE" >&2; exit 2 ;;
          esac
          settings+=(-e "$2") ;;
        --env-file)
          [[ -r $2 ]] || { echo "run.sh: cannot read the env file $2" >&2; exit 2; }
          settings+=(--env-file "$2") ;;
      esac
      shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[[ $port =~ ^[0-9]+$ ]] || { echo "run.sh: --port must be a number" >&2; exit 2; }

grace=${SHUTDOWN_GRACE_S:-20}
[[ $grace =~ ^[0-9]+$ ]] || { echo "run.sh: SHUTDOWN_GRACE_S must be whole seconds" >&2; exit 2; }

# The container CLI: Docker when its engine answers (a docker client alone is not enough), else Podman.
if [[ -n ${DOCKER:-} ]]; then
  engine=$DOCKER
elif command -v docker >/dev/null 2>&1 && docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  engine=docker
elif command -v podman >/dev/null 2>&1; then
  engine=podman
else
  engine=docker
fi
case "$(basename "$engine")" in
  podman*) flavour=podman ;;
  *) flavour=docker ;;
esac
rootless=false
if [[ $flavour == podman ]]; then
  [[ $(id -u) -ne 0 ]] && rootless=true
elif ! $dry_run && "$engine" info --format '{{.SecurityOptions}}' 2>/dev/null | grep -q rootless; then
  rootless=true
fi

data_root=${XDG_DATA_HOME:-$HOME/.local/share}/transcription-service
cuda_cache=${CUDA_CACHE_HOST_DIR:-$data_root/cuda-cache}
model_cache=${MODEL_CACHE_HOST_DIR:-$data_root/models}
image_user=10001:10001

owner_of() {  # uid:gid of a folder, or of the folder run.sh would create
  if [[ -d $1 ]]; then
    stat -c %u:%g "$1"
  elif [[ $(id -u) -eq 0 ]]; then
    echo "$image_user"
  else
    echo "$(id -u):$(id -g)"
  fi
}
owner=$(owner_of "$model_cache")
if [[ $(owner_of "$cuda_cache") != "$owner" ]]; then
  echo "run.sh: $cuda_cache and $model_cache have different owners; the service runs as one user." >&2
  echo "        Give both to one user (chown), or point CUDA_CACHE_HOST_DIR / MODEL_CACHE_HOST_DIR elsewhere." >&2
  exit 2
fi
if [[ ${owner%%:*} -eq 0 ]]; then
  echo "run.sh: $model_cache belongs to root, and the service does not run as root." >&2
  echo "        Fix: sudo chown -R ${image_user} '$model_cache' '$cuda_cache' (or remove them: run.sh makes new ones)." >&2
  exit 2
fi
# Who the service runs as, in the engine's terms.
if $rootless; then
  if [[ $owner != "$(id -u):$(id -g)" ]]; then
    echo "run.sh: a rootless $flavour can write only your own folders; $model_cache belongs to uid ${owner%%:*}." >&2
    exit 2
  fi
  # Rootless: container uid 0 is you under Docker; Podman maps you to your own uid with keep-id.
  if [[ $flavour == podman ]]; then user=(--userns=keep-id --user "$owner"); else user=(--user 0:0); fi
else
  user=(--user "$owner")
fi

gpu_flags=()
if [[ $gpus != none ]]; then
  if [[ $flavour == docker ]]; then
    gpu_flags=(--gpus "$gpus")
  else
    # Podman reaches NVIDIA GPUs through CDI: `nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`.
    case "$gpus" in
      all) gpu_flags=(--device nvidia.com/gpu=all) ;;
      device=*) IFS=, read -r -a ids <<< "${gpus#device=}"
                for id in "${ids[@]}"; do gpu_flags+=(--device "nvidia.com/gpu=$id"); done ;;
      *[!0-9]*|"") echo "run.sh: --gpus takes all, a count, device=ID[,ID] or none" >&2; exit 2 ;;
      *) for ((id = 0; id < gpus; id++)); do gpu_flags+=(--device "nvidia.com/gpu=$id"); done ;;
    esac
  fi
fi

# The JIT cache settings are repeated here (the image sets them too) so that an image built
# from another base, such as an NGC one that sets CUDA_FORCE_PTX_JIT=1, still uses the cache.
common=("${gpu_flags[@]}" --ipc=host "${user[@]}"
  -e CUDA_CACHE_DISABLE=0 -e CUDA_CACHE_PATH=/cuda-cache
  -e CUDA_CACHE_MAXSIZE=2147483648 -e CUDA_FORCE_PTX_JIT=0
  -v "$cuda_cache:/cuda-cache" -v "$model_cache:/models")
if [[ -n "${HF_TOKEN:-}" ]]; then common+=(-e HF_TOKEN); fi
common+=("${settings[@]}")

if [[ $subcommand == prewarm ]]; then
  cmd=("$engine" run --rm "${common[@]}" "$image" prewarm)
else
  # The service drains on SIGTERM for SHUTDOWN_GRACE_S, then exits: the engine must wait that long.
  cmd=("$engine" run -d --name "$name" --restart unless-stopped -p "$port:8003"
    --stop-timeout "$((grace + 10))" -e SHUTDOWN_GRACE_S="$grace" "${common[@]}" "$image")
fi

if $dry_run; then
  printf '%q ' "${cmd[@]}"
  echo
  exit 0
fi

for folder in "$cuda_cache" "$model_cache"; do
  if [[ ! -d $folder ]]; then
    mkdir -p "$folder"
    [[ $(id -u) -ne 0 ]] || chown "$image_user" "$folder"
  fi
done
if [[ $subcommand == prewarm ]]; then
  exec "${cmd[@]}"
fi

"${cmd[@]}" >/dev/null
if ! $wait_ready; then
  echo "run.sh: started $name on port $port"
  exit 0
fi
# Until the process answers /health/live (seconds: models load after it does), watch for a start
# that fails: a refused setting would otherwise restart forever under --restart unless-stopped.
for _ in $(seq 1 120); do
  read -r status restarts < <("$engine" inspect -f '{{.State.Status}} {{.RestartCount}}' "$name" 2>/dev/null || echo gone 0)
  if [[ $status =~ ^(exited|gone|dead|restarting)$ || ${restarts:-0} -gt 0 ]]; then
    echo "run.sh: $name did not start; its last words:" >&2
    "$engine" logs --tail 20 "$name" >&2 2>&1 || true
    "$engine" rm -f "$name" >/dev/null 2>&1 || true
    exit 1
  fi
  if "$engine" exec "$name" curl -fsS -o /dev/null http://127.0.0.1:8003/health/live 2>/dev/null; then
    echo "run.sh: $name is up on http://localhost:$port (models load and warm next: watch /health)"
    exit 0
  fi
  sleep 1
done
echo "run.sh: $name has not answered in 120 s; follow it with: $engine logs -f $name" >&2
exit 1
