#!/usr/bin/env bash
# Builds the image of the video example (sluice-video:local, or $SLUICE_VIDEO_IMAGE) without a registry: a
# FROM scratch image holding this machine's Python with boto3 and moto[s3] (PyPI), ffmpeg and ffprobe (Debian),
# the colourise example, sluice-watchdog and examples/video/*.py under /opt/video, with every shared library they
# load. The video functions run in it as container functions, and the compose deployment's S3 server (moto,
# profile `video`) too. SLUICE_BINARY names a sluice build whose directory holds sluice-watchdog and
# examples/colourise; without it the release build is made.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../../lib.sh"
ensure_docker
ensure_ffmpeg
ensure_moto
cd "$SLUICE_ROOT"
if [ -n "${SLUICE_BINARY:-}" ]; then
  built="$(dirname "$SLUICE_BINARY")"
else
  ensure_rust
  say "cargo build --release (sluice-watchdog, examples/colourise)"
  cargo build --release --bin sluice-watchdog --example colourise
  built="$SLUICE_ROOT/target/release"
fi
for program in "$built/sluice-watchdog" "$built/examples/colourise"; do
  [ -x "$program" ] || die "$program is missing: build it (cargo build --bin sluice-watchdog --example colourise)"
done
image="${SLUICE_VIDEO_IMAGE:-sluice-video:local}"
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
root="$context/rootfs"

# Copies files to the same paths in the image.
copy() {
  local file
  for file in "$@"; do
    [ -e "$root$file" ] && continue
    mkdir -p "$root$(dirname "$file")"
    cp -L "$file" "$root$file"
  done
}
# Copies the shared libraries ldd names for a program or library.
copy_libraries() {
  ldd "$1" 2>/dev/null | grep -o '/[^ ]*' | while read -r library; do copy "$library"; done || true
}
# Copies a program or library, and the shared libraries it needs.
copy_linked() {
  copy "$1"
  copy_libraries "$1"
}

python="$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')"
copy_linked "$python"
# The interpreter's standard library and the distributions the functions and moto's S3 and SNS need; each
# compiled module with its libraries.
python3 "$here/python_files.py" boto3 'moto[s3]' flask flask-cors >"$context/python-files"
while read -r file; do
  case "$file" in
    *.so | *.so.*) copy_linked "$file" ;;
    *) copy "$file" ;;
  esac
done <"$context/python-files"
for program in ffmpeg ffprobe; do
  copy_linked "$(command -v "$program")"
done
mkdir -p "$root/usr/local/bin" "$root/opt/video" "$root/etc" "$root/tmp"
ln -s "$python" "$root/usr/local/bin/python3"
for program in sluice-watchdog examples/colourise; do
  install -m 0755 "$built/$program" "$root/usr/local/bin/$(basename "$program")"
  copy_libraries "$built/$program"
done
install -m 0644 "$SLUICE_ROOT"/examples/video/*.py "$root/opt/video/"
printf 'root:x:0:0:root:/:/bin/false\nnobody:x:65534:65534:nobody:/tmp:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
chmod 1777 "$root/tmp"
cat >"$context/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin:/usr/bin:/bin HOME=/tmp PYTHONDONTWRITEBYTECODE=1 fprocess="python3 /opt/video/video-split.py"
EXPOSE 8080
CMD ["/usr/local/bin/sluice-watchdog"]
DOCKERFILE
say "docker build -t $image ($(du -sh "$root" | cut -f1))"
docker build --quiet -t "$image" "$context" >/dev/null
say "built $image"
