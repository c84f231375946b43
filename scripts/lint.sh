#!/usr/bin/env bash
# Static checks: ruff (lint + format), mypy on app/, shellcheck, hadolint.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bin=.venv/bin
"$bin/ruff" check .
"$bin/ruff" format --check .
"$bin/mypy"
mapfile -t shell_scripts < <(git ls-files '*.sh' .ci/run)
shellcheck "${shell_scripts[@]}"
"$bin/hadolint" Dockerfile.gpu
echo "lint: ok"
