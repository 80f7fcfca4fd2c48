#!/bin/sh
# Start one role of the superstep Dapr runtime under uvicorn.
#
#   superstep-serve [api|host] [extra uvicorn options...]
#
# The role is the first argument, else $SUPERSTEP_ROLE (api by default in the
# image). The app binds 0.0.0.0:$PORT (8000 by default); a later --port/--host
# option overrides that (uvicorn keeps the last value). The Dapr app port
# (dapr.io/app-port, ACA dapr.appPort) must be the same port.
set -eu

role="${SUPERSTEP_ROLE:-}"
case "${1:-}" in
  api|host|executor) role="$1"; shift ;;
esac

case "$role" in
  api) factory="executor_host.api:create_app" ;;
  host|executor) factory="executor_host.host:create_app" ;;
  *)
    echo "superstep-serve: unknown role '${role}' (use api or host, as the first argument or SUPERSTEP_ROLE)" >&2
    exit 64
    ;;
esac

exec python -m uvicorn --factory "$factory" \
  --host "${HOST:-0.0.0.0}" \
  --port "${PORT:-8000}" \
  --timeout-graceful-shutdown "${SUPERSTEP_GRACEFUL_SHUTDOWN_S:-20}" \
  "$@"
