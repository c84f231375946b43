#!/usr/bin/env bash
# Everything CI runs: install (once), lint, then the whole test suite on the CPU —
# unit, API, end-to-end against the real server with the bundled model, and the image
# (Dockerfile.gpu built and started with run.sh; buildah and Podman from Debian when no Docker
# engine runs, which needs root to install them).
#   scripts/test.sh         every tier (what CI runs)
#   scripts/test.sh fast    unit + api only: no server started, about two minutes
#   scripts/test.sh image   the image tier alone; IMAGE_PLATFORM=linux/arm64 for the arm64 image
#                           under emulation (slow), IMAGE_TAG=NAME to test a built image
# Other arguments go to pytest, e.g. scripts/test.sh -m e2e -k openai.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$repo/scripts/bootstrap.sh" dev
"$repo/scripts/lint.sh"
cd "$repo"
case "${1:-}" in
  fast) shift; set -- -m "unit or api" "$@" ;;
  image) shift; set -- -m image "$@" ;;
esac
exec .venv/bin/python -m pytest "$@"
