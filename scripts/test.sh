#!/usr/bin/env bash
# Everything CI runs: install (once), lint, then the whole test suite on the CPU —
# unit, API, and end-to-end against the real server with the bundled model.
#   scripts/test.sh         every tier (what CI runs)
#   scripts/test.sh fast    unit + api only: no server started, about two minutes
# Other arguments go to pytest, e.g. scripts/test.sh -m e2e -k openai.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$repo/scripts/bootstrap.sh" dev
"$repo/scripts/lint.sh"
cd "$repo"
if [[ ${1:-} == fast ]]; then
  shift
  set -- -m "unit or api" "$@"
fi
exec .venv/bin/python -m pytest "$@"
