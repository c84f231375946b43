#!/usr/bin/env bash
# Install what the service needs, once: system packages, then a virtualenv with the pinned
# Python dependencies (constraints.txt). Re-running is cheap: nothing is reinstalled while
# pyproject.toml and constraints.txt are unchanged.
#   scripts/bootstrap.sh runtime   # what `serve.sh` needs
#   scripts/bootstrap.sh dev       # plus test and lint tools
set -euo pipefail

mode=${1:-runtime}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$repo/.venv}
python=${PYTHON:-python3}

case "$mode" in
  runtime) apt_packages=(ffmpeg); extras="" ;;
  dev) apt_packages=(ffmpeg espeak-ng sox shellcheck); extras="[dev]" ;;
  *) echo "usage: $0 [runtime|dev]" >&2; exit 2 ;;
esac

missing=()
for package in "${apt_packages[@]}"; do
  command -v "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bootstrap: please install ${missing[*]} (e.g. sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

stamp="$venv/.installed-$mode"
fingerprint=$(cat "$repo/pyproject.toml" "$repo/constraints.txt" | sha256sum | cut -d' ' -f1)
if [[ -f "$stamp" && $(cat "$stamp") == "$fingerprint" ]]; then
  exit 0
fi
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
echo "bootstrap: installing Python dependencies into $venv (first run takes a few minutes)" >&2
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -c "$repo/constraints.txt" -e "$repo$extras"
echo "$fingerprint" > "$stamp"
