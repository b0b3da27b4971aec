#!/usr/bin/env bash
# Starts the compose deployment (building its image first when missing): makes the admin password and the
# metrics token on first start (secrets/, readable by the services' user only), then docker-compose up -d.
# Extra arguments go to docker-compose (say --profile grafana before up: ./up.sh --profile grafana).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"
ensure_docker
ensure_compose
image="${SLUICE_IMAGE:-sluice:local}"
docker image inspect "$image" >/dev/null 2>&1 || "$here/build.sh"
secrets="${SLUICE_SECRETS_DIR:-$here/secrets}"
mkdir -p "$secrets"
for name in admin-password metrics-token; do
  if [ ! -s "$secrets/$name" ]; then
    head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$secrets/$name"
  fi
done
# The gateways, connectors and Prometheus run as nobody (65534); workers as root, for the Docker socket.
chown -R 65534:65534 "$secrets"
chmod 0700 "$secrets"
chmod 0400 "$secrets"/*
cd "$here"
SLUICE_SECRETS_DIR="$secrets" docker-compose "$@" up -d
say "gateways: http://${SLUICE_BIND:-127.0.0.1}:${SLUICE_GATEWAY_1_PORT:-8080} and :${SLUICE_GATEWAY_2_PORT:-8081} (console at /ui/)"
say "user admin, password in $secrets/admin-password; Prometheus: http://${SLUICE_BIND:-127.0.0.1}:${SLUICE_PROMETHEUS_PORT:-9090}"
