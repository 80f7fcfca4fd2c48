#!/bin/sh
# Start one role of the superstep Dapr runtime under uvicorn.
#
#   superstep-serve [api|host] [extra uvicorn options...]
#
# The role is the first argument, else $SUPERSTEP_ROLE (api by default in the
# image). The app binds 0.0.0.0:$PORT (8000 by default); a later --port/--host
# option overrides that (uvicorn keeps the last value). The Dapr app port
# (dapr.io/app-port, ACA dapr.appPort) must be the same port.
#
# Idle keep-alive connections stay open for $SUPERSTEP_KEEP_ALIVE_S seconds (620 by
# default; uvicorn's own default is 5): daprd keeps its idle connections to the app
# without a time limit and does not send an actor call again when the app closed
# the connection under it (the call fails with ERR_ACTOR_INVOKE_METHOD, "connection
# reset by peer"), and clients such as httpx drop theirs after 5 s, the same moment
# uvicorn's default would close them. 620 s also outlasts the idle timeouts of the
# usual load balancers (AWS ALB 60 s, Google Cloud's 600 s).
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
  --timeout-keep-alive "${SUPERSTEP_KEEP_ALIVE_S:-620}" \
  "$@"
