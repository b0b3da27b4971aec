#!/usr/bin/env bash
# Starts the three-node cluster of node-{1,2,3}.conf on this machine (client ports 4222-4224), in the
# foreground; Ctrl-C stops all three. Point Sluice at it with
#   --nats-url nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224 --replicas 3
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"
ensure_nats_server
cd "$here"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for i in 1 2 3; do
  mkdir -p "data/node-$i"
  "$SLUICE_NATS_SERVER" -c "node-$i.conf" &
  pids+=($!)
done
say "cluster up: nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224"
wait
