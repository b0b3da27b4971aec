#!/usr/bin/env bash
# Starts the whole platform on this machine: installs a nats-server >= 2.10 when none is found, makes sure a
# Docker engine runs (for container functions; installed and started when missing), builds Sluice,
# and runs `sluice up` (gateway + worker + embedded nats-server) with the demo functions deployed.
# Extra arguments go to `sluice up` (e.g. --listen 0.0.0.0:8080).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_rust
ensure_nats_server
# Container functions need an engine; without one the platform still runs process and http functions.
( ensure_docker ) || say "no Docker engine: container functions will not run here (process and http functions will)"
say "building sluice (release)"
cargo build --release --quiet --manifest-path "$SLUICE_ROOT/Cargo.toml" --bins
say "starting: gateway on ${SLUICE_LISTEN:-127.0.0.1:8080}, data in ${SLUICE_DATA_DIR:-~/.local/share/sluice}"
exec "$SLUICE_ROOT/target/release/sluice" up --deploy "$SLUICE_ROOT/deploy/examples/demo.yaml" "$@"
