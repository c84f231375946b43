#!/usr/bin/env bash
# Image build step (Dockerfile.gpu): the pinned dependencies into $VENV, then the patches.
# Needs network (PyPI, and NLTK's data host for the sentence splitter).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-/opt/venv}

python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -c "$repo/constraints.txt" "$repo"

# WhisperX's aligner splits sentences with NLTK punkt_tab and would download it mid-request.
"$venv/bin/python" -m nltk.downloader -q -d "${NLTK_DATA:-/opt/nltk_data}" punkt_tab
