#!/usr/bin/env bash
# Stops the compose deployment cleanly (each service gets SIGTERM and its grace period), removes the function
# containers the workers started on the functions network, then the services and networks. --volumes also
# removes the stored data (NATS streams and buckets, Prometheus); other arguments go to docker-compose.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"
volumes=()
if [ "${1:-}" = "--volumes" ]; then
  volumes=(--volumes)
  shift
fi
cd "$here"
export SLUICE_SECRETS_DIR="${SLUICE_SECRETS_DIR:-$here/secrets}"
docker-compose "$@" stop
network="${SLUICE_FUNCTIONS_NETWORK:-sluice-functions}"
functions="$(docker ps -aq --filter "network=$network")"
if [ -n "$functions" ]; then
  say "removing the function containers on $network"
  # shellcheck disable=SC2086
  docker rm -f $functions >/dev/null
fi
docker-compose "$@" down "${volumes[@]}"
