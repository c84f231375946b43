#!/usr/bin/env bash
# Container entry point. `serve` (default) and `prewarm` exec Python, so it is PID 1 and
# `docker stop` reaches the server directly; anything else runs as given.
set -euo pipefail
command=${1:-serve}
case "$command" in
  serve|prewarm) exec python -m app "$command" ;;
  *) exec "$@" ;;
esac
