#!/usr/bin/env bash
# Prepare the lent GPU test machine (see ../shared/gpu/README.md) from the git-ignored .gpu/
# folder carried with the run: Python bundles, the int8 tiny.en, the large-v3-shaped model.
# Source it from the repository root:  . bench/gpu/setup_device.sh [BUNDLE_DIR]
# A call may carry only part of the bundles (64 MiB per call): each is unpacked once per warm machine.
# Test-machine only: the product image installs real packages and ships a real ffmpeg.
# shellcheck disable=SC1091
. .gpu/device_env.sh "${1:-.gpu/bundles}"
mkdir -p /tmp/models /tmp/site/av
# faster-whisper imports av at import time but only uses it to decode files; we pass waveforms.
[ -e /tmp/site/av/__init__.py ] || : > /tmp/site/av/__init__.py
# Models: the int8 tiny.en (a real model, for the tests) and/or tiny-seed (tiny.en's variables, zeroed:
# under 1 MB, enough to shape the large model when the real one does not fit the call).
for m in .gpu/model/*.tar.xz; do
  [ -e "$m" ] && [ ! -d "/tmp/models/$(basename "$m" .tar.xz)" ] && tar xJf "$m" -C /tmp/models
done
seed=/tmp/models/tiny-int8
[ -d "$seed" ] || seed=/tmp/models/tiny-seed
if [ -d "$seed" ] && [ ! -d /tmp/models/large-v3-shaped ]; then
  python3 .gpu/gen_large.py "$seed" /tmp/models/large-v3-shaped
fi
# The GPU default (openai/whisper-large-v3) is a Hugging Face checkpoint: the same shape in that format.
if [ -d /tmp/models/large-v3-shaped ] && [ ! -d /tmp/models/large-v3-hf ]; then
  PYTHONPATH=$PWD:$PYTHONPATH python3 bench/gpu/ct2_to_hf.py /tmp/models/large-v3-shaped /tmp/models/large-v3-hf
fi
FFMPEG_BINARY=$PWD/bench/gpu/ffmpeg_wav_shim.py
export FFMPEG_BINARY
# The Blackwell bridge, as the image installs it (its sitecustomize reports the capability decision).
case ":$PYTHONPATH:" in *":$PWD/patches:"*) ;; *) export PYTHONPATH=$PWD/patches:$PYTHONPATH ;; esac
