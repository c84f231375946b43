# shellcheck shell=bash
# Sourced by scripts/build_image.sh and the image tests: buildah and Podman from Debian's
# packages, set up for machines with no Docker engine (CI, the dev box).
#
#   ensure_container_tools [amd64|arm64]
#
# Installs what is missing (as root, with apt), and exports CONTAINERS_CONF: a configuration of
# our own (the machine's /etc/containers is left alone) that takes runc, because crun fails on
# hosts with cgroups v1 in hybrid mode ("cgroups in hybrid mode not supported"), and sets the
# ulimits runc would otherwise try to raise past the host's. arm64 on another machine also
# needs qemu registered with binfmt_misc.

ensure_container_tools() {
  local arch=${1:-amd64} packages=() tool
  # tcpdump: the image tests watch the container's network with it.
  for tool in buildah podman mmdebstrap runc fuse-overlayfs slirp4netns newuidmap tcpdump; do
    command -v "$tool" >/dev/null 2>&1 || packages+=("${tool/newuidmap/uidmap}")
  done
  local host_arch
  host_arch=$(uname -m | sed -e 's/x86_64/amd64/' -e 's/aarch64/arm64/')
  if [[ $arch != "$host_arch" ]]; then
    command -v "qemu-$(uname -m | sed -e 's/x86_64/aarch64/' -e 's/aarch64/x86_64/')-static" >/dev/null 2>&1 ||
      packages+=(qemu-user-static binfmt-support)
  fi
  if ((${#packages[@]})); then
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
      echo "container_tools: please install ${packages[*]} (Debian/Ubuntu: apt-get install ${packages[*]})" >&2
      return 1
    fi
    echo "container_tools: installing ${packages[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  fi
  if [[ $arch != "$host_arch" ]]; then
    [[ -e /proc/sys/fs/binfmt_misc/register ]] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 && ! -e /proc/sys/fs/binfmt_misc/qemu-x86_64 ]]; then
      update-binfmts --enable >/dev/null 2>&1 || true
    fi
  fi
  if [[ -z ${CONTAINERS_CONF:-} ]]; then
    local conf_dir=${IMAGE_WORK_DIR:-/var/tmp/transcription-service-image}
    mkdir -p "$conf_dir"
    cat > "$conf_dir/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
EOF
    export CONTAINERS_CONF=$conf_dir/containers.conf
  fi
}
