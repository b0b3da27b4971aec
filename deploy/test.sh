#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, unit tests and end-to-end tests against real servers.
# Installs and starts what the tests need when it is missing: a nats-server >= 2.10, a Docker engine (Debian's
# docker.io; dockerd started here, and stopped again at the end, when none runs), the Python CloudEvents SDK,
# moto (an S3 server with notifications), schemathesis (the OpenAPI fuzzer), ffmpeg (the video example) and
# Prometheus (the dashboards' queries and alert rules), chromium (the console, in a real browser), and
# docker-compose with busybox-static (the compose deployment's image and test).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_rust
ensure_nats_server
ensure_docker
trap stop_started_docker EXIT
ensure_python_cloudevents
ensure_moto
ensure_schemathesis
ensure_ffmpeg
ensure_prometheus
ensure_chromium
ensure_compose
cd "$SLUICE_ROOT"
say "nats-server: $SLUICE_NATS_SERVER ($(nats_version_of "$SLUICE_NATS_SERVER"))"
say "docker engine: $(docker version --format '{{.Server.Version}}')"
say "cargo fmt --check"
cargo fmt --all -- --check
say "promtool check rules deploy/prometheus/alerts.yml"
promtool check rules deploy/prometheus/alerts.yml >/dev/null
say "promtool test rules deploy/prometheus/alerts.test.yml"
promtool test rules deploy/prometheus/alerts.test.yml >/dev/null
say "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
say "benchmark harness smoke run (cargo bench --bench e2e -- --quick)"
cargo bench --bench e2e -- --quick
say "cargo test"
# Not --all-targets: that would also run the benchmark binary, in debug mode, as a test.
cargo test --workspace
