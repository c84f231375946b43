#!/usr/bin/env bash
# Everything CI runs: install (once), lint, then the whole test suite on the CPU —
# unit, API, and end-to-end against the real server with the bundled model.
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not e2e".
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$repo/scripts/bootstrap.sh" dev
"$repo/scripts/lint.sh"
cd "$repo"
exec .venv/bin/python -m pytest "$@"
