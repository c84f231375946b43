#!/usr/bin/env bash
# Container entry point. `serve` (default) execs the server so it is PID 1 and `docker stop`
# reaches it directly.
set -euo pipefail
command=${1:-serve}
case "$command" in
  serve) exec python -m app ;;
  *) exec "$@" ;;
esac
