#!/usr/bin/env bash
# Adds the video example to a running compose deployment (./up.sh): builds its image when missing
# (./build.sh here), starts the S3 server (moto, profile `video`) with the buckets videos-in, videos-work and
# videos-out, has videos-in notify the connectors of new objects, and deploys the three functions of
# functions.yaml. Then put an .mp4 in videos-in (examples/video/s3.py put, with S3_ENDPOINT at the s3 service's
# published port) and watch its calls in the console. Extra arguments go to docker-compose (e.g. -p PROJECT).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../../lib.sh"
ensure_docker
ensure_compose
image="${SLUICE_VIDEO_IMAGE:-sluice-video:local}"
docker image inspect "$image" >/dev/null 2>&1 || "$here/build.sh"
sluice="${SLUICE_BINARY:-$SLUICE_ROOT/target/release/sluice}"
[ -x "$sluice" ] || die "$sluice is missing: run ../build.sh first (or set SLUICE_BINARY)"
compose_dir="$here/.."
export SLUICE_SECRETS_DIR="${SLUICE_SECRETS_DIR:-$compose_dir/secrets}"
[ -s "$SLUICE_SECRETS_DIR/admin-password" ] || die "no admin password in $SLUICE_SECRETS_DIR: start the deployment with ../up.sh first"
export SLUICE_GATEWAY="http://${SLUICE_BIND:-127.0.0.1}:${SLUICE_GATEWAY_1_PORT:-8080}" SLUICE_USER=admin
SLUICE_PASSWORD="$(cat "$SLUICE_SECRETS_DIR/admin-password")"
export SLUICE_PASSWORD
cd "$compose_dir"
docker-compose "$@" --profile video up -d s3
for _ in $(seq 1 60); do
  docker-compose "$@" exec -T s3 python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:5000/")' \
    >/dev/null 2>&1 && break
  sleep 1
done
docker-compose "$@" exec -T s3 python3 /opt/video/s3.py buckets

# The connectors take S3 notifications with the secret connector-s3-token; a new one each start.
token="$(head -c 24 /dev/urandom | base64 | tr -d '/+=\n')"
secret="{\"name\": \"connector-s3-token\", \"value\": \"$token\"}"
status="$(curl -sS -o /dev/null -w '%{http_code}' -u "admin:$SLUICE_PASSWORD" -H 'Content-Type: application/json' \
  -X POST -d "$secret" "$SLUICE_GATEWAY/system/secrets")"
if [ "$status" = 409 ]; then
  status="$(curl -sS -o /dev/null -w '%{http_code}' -u "admin:$SLUICE_PASSWORD" -H 'Content-Type: application/json' \
    -X PUT -d "$secret" "$SLUICE_GATEWAY/system/secrets")"
fi
case "$status" in 2??) ;; *) die "storing the secret connector-s3-token answered $status" ;; esac
docker-compose "$@" exec -T s3 python3 /opt/video/s3.py notify "http://connectors:8090/connectors/s3/sns?token=$token"

specs="$(mktemp)"
trap 'rm -f "$specs"' EXIT
sed "s|image: sluice-video:local|image: $image|" "$here/functions.yaml" >"$specs"
"$sluice" fn deploy -f "$specs"
say "video functions deployed; put a video: S3_ENDPOINT=http://${SLUICE_BIND:-127.0.0.1}:${SLUICE_S3_PORT:-5000} \
AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test python3 examples/video/s3.py put clip.mp4 clip.mp4"
