#!/usr/bin/env bash
# Regenerate constraints.txt, the lock every install uses, for linux/amd64 and linux/arm64 at
# once (uv's universal resolution), with overrides.txt applied. Current pins are kept where
# they still fit; pass --upgrade to move everything to the newest allowed release.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
uv=${UV:-.venv/bin/uv}
previous=$(mktemp)
resolved=$(mktemp)
trap 'rm -f "$previous" "$resolved"' EXIT
grep -vE '^\s*(#|$)' constraints.txt > "$previous"
"$uv" pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
  --override overrides.txt -c "$previous" --no-header --no-annotate -q -o "$resolved" "$@"
{
  echo "# The lock: exact versions for every install (CI, the image, scripts/serve.sh, a user's machine),"
  echo "# for linux/amd64 and linux/arm64. Regenerate with scripts/lock.sh after changing pyproject.toml"
  echo "# or overrides.txt."
  cat "$resolved"
  echo "# The installer itself (scripts/bootstrap.sh): it applies overrides.txt, which pip cannot."
  grep -E '^uv==' "$previous"
} > constraints.txt
