#!/usr/bin/env bash
# Build Dockerfile.gpu here, with Docker when its engine answers, else with buildah (Debian's
# packages, installed when missing and running as root). The image test tier
# (tests/image/) builds through this script; users can too.
#
#   scripts/build_image.sh [--platform linux/amd64|linux/arm64] [--tag NAME] [--target STAGE]
#
# Where no registry can be reached (CI here), the real base (ubuntu:24.04) cannot be pulled:
# a stand-in is made from Debian's archive with mmdebstrap (Debian 12, its own Python 3.11)
# and cached in $IMAGE_WORK_DIR. Builds behind a TLS-inspecting proxy need its CA:
# EXTRA_CA_FILE (default: this machine's CA bundle, which trusts whatever this machine trusts)
# goes in as the build secret `extra_ca`. arm64 on an x86-64 machine runs under qemu
# (binfmt_misc), several times slower. Prints the image's name on its last line.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

platform=linux/$(uname -m | sed -e 's/x86_64/amd64/' -e 's/aarch64/arm64/')
tag=""
target=service
while (($#)); do
  case "$1" in
    --platform|--tag|--target)
      [[ $# -ge 2 ]] || { echo "build_image: $1 needs a value" >&2; exit 2; }
      case "$1" in --platform) platform=$2 ;; --tag) tag=$2 ;; --target) target=$2 ;; esac
      shift ;;
    *) echo "build_image: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
arch=${platform#linux/}
case "$arch" in amd64|arm64) ;; *) echo "build_image: platform linux/amd64 or linux/arm64" >&2; exit 2 ;; esac
tag=${tag:-localhost/transcription-service:gpu-$arch}
work=${IMAGE_WORK_DIR:-/var/tmp/transcription-service-image}
extra_ca=${EXTRA_CA_FILE:-/etc/ssl/certs/ca-certificates.crt}
secret=()
[[ -s $extra_ca ]] && secret=(--secret "id=extra_ca,src=$extra_ca")
mkdir -p "$work"
log() { echo "build_image: $*" >&2; }
# Each build whose dependencies changed leaves the image it replaces untagged, about 7 GB, and a
# failed step leaves its working container: a few such builds fill a disk. Both are removed,
# but only ours (Dockerfile.gpu's label); the layers a later build reuses have children and stay.
label=org.opencontainers.image.title=transcription-service

if command -v docker >/dev/null 2>&1 && docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  log "building $tag for $platform with Docker"
  DOCKER_BUILDKIT=1 docker build --platform "$platform" --target "$target" "${secret[@]}" \
    -f "$repo/Dockerfile.gpu" -t "$tag" "$repo" >&2
  docker image prune -f --filter "label=$label" >/dev/null || true
  echo "$tag"
  exit 0
fi

# --- buildah, with what Debian ships ---
. "$repo/scripts/container_tools.sh"
ensure_container_tools "$arch"

base=ubuntu:24.04
if ! timeout 60 buildah pull --quiet --platform "$platform" "docker.io/library/$base" >/dev/null 2>&1; then
  base=localhost/standin-base:bookworm-$arch
  if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
    rootfs=$work/bookworm-$arch.tar
    if [[ ! -s $rootfs ]]; then
      log "no registry: making a Debian 12 stand-in base for $arch with mmdebstrap"
      mmdebstrap --variant=minbase --arch="$arch" --include=ca-certificates bookworm "$work/partial-$arch.tar" \
        http://deb.debian.org/debian >&2
      mv "$work/partial-$arch.tar" "$rootfs"
    fi
    container=$(buildah from --arch "$arch" scratch)
    buildah add "$container" "$rootfs" / >/dev/null
    buildah config --arch "$arch" --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$container"
    buildah commit --quiet "$container" "$base" >/dev/null
    buildah rm "$container" >/dev/null
  fi
fi

prune_ours() { podman image prune -f --filter "label=$label" >/dev/null 2>&1 || true; }
prune_ours  # what an earlier build left, before this one needs the room
log "building $tag for $platform from $base with buildah"
# --format docker keeps HEALTHCHECK and SHELL; --layers reuses unchanged steps across builds;
# --force-rm removes the working container of a step that failed (it holds all that step wrote).
buildah bud --format docker --layers --force-rm --platform "$platform" --target "$target" "${secret[@]}" \
  --build-arg "RUNTIME_IMAGE=$base" -f "$repo/Dockerfile.gpu" -t "$tag" "$repo" >&2
prune_ours
echo "$tag"
