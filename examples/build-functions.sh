#!/usr/bin/env bash
# Builds the example function images with `sluice build` (offline: nothing is pulled):
#   sluice/echo       the request body back (cat)
#   sluice/sleep      sleeps for the number of seconds in the body (default 1), then says so
#   sluice/colourise  grayscale PNG/JPEG in, colour PNG out (examples/colourise.rs)
# Then deploy them with: sluice fn deploy -f examples/functions.yaml
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo build --release --quiet --bins --example colourise
sluice="$root/target/release/sluice"
"$sluice" build cat -t sluice/echo:latest
"$sluice" build sh -t sluice/sleep:latest --file "$(command -v sleep):$(command -v sleep)" \
  --fprocess "sh -c 'read -r s || true; s=\${s:-1}; sleep \"\$s\"; echo \"slept \${s}s\"'"
"$sluice" build "$root/target/release/examples/colourise" -t sluice/colourise:latest
