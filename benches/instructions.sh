#!/usr/bin/env bash
# One process's own instructions per end-to-end call, counted by callgrind: repeatable where CPU time is not (a
# shared machine's steal moves seconds, not instructions). Release build, an http no-op function, a callback
# per call, 16 calls in flight; the counters start after the warm-up and stop at the last callback. PROCESS is
# the one counted: the worker (per call run) or the gateway (per call accepted).
#
#   cargo build --release && benches/instructions.sh [worker|gateway] [CALLS]   (CALLS: a multiple of 16, default 1600)
#
# Needs valgrind, python3 and curl; nats-server from PATH or SLUICE_NATS_SERVER. Prints instructions per call
# and leaves the profile in the printed directory (callgrind_annotate --inclusive=yes DIR/callgrind.out.1).
set -euo pipefail
PROCESS=${1:-worker}
CALLS=${2:-1600}
case "$PROCESS" in worker|gateway) ;; *) echo "PROCESS is worker or gateway, not $PROCESS" >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${SLUICE_BIN:-$ROOT/target/release/sluice}
NATS=${SLUICE_NATS_SERVER:-$(command -v nats-server)}
for tool in valgrind callgrind_control python3 curl; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "missing: $BIN (cargo build --release)" >&2; exit 1; }
# The processes run from the scratch directory, so a relative path would name nothing there.
BIN=$(realpath "$BIN")
DIR=$(mktemp -d /tmp/sluice-instructions.XXXXXX)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
NATS_PORT=$(port); GW_PORT=$(port); FN_PORT=$(port); CB_PORT=$(port); METRICS_PORT=$(port)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT

# The no-op function and the callback receiver, keep-alive, counting callbacks into a file.
cat > "$DIR/peers.py" <<'PY'
import sys, threading
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
fn_port, cb_port, counter = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
count, lock = 0, threading.Lock()
class Peer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args): pass
    def do_POST(self):
        global count
        self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.server.server_port == cb_port:
            with lock:
                count += 1
                with open(counter + ".tmp", "w") as f: f.write(str(count))
                import os; os.replace(counter + ".tmp", counter)
        self.send_response(200); self.send_header("content-length", "2"); self.end_headers(); self.wfile.write(b"ok")
for port in (fn_port, cb_port):
    server = ThreadingHTTPServer(("127.0.0.1", port), Peer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
threading.Event().wait()
PY
# CALLS async calls, 16 at a time over keep-alive connections.
cat > "$DIR/load.py" <<'PY'
import sys, http.client, threading
gw_port, calls, cb = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def post(n):
    c = http.client.HTTPConnection("127.0.0.1", gw_port)
    for _ in range(n):
        c.request("POST", "/async-function/noop", b"x" * 256, {"X-Callback-Url": cb})
        r = c.getresponse(); r.read()
        assert r.status == 202, r.status
threads = [threading.Thread(target=post, args=(calls // 16,)) for _ in range(16)]
[t.start() for t in threads]; [t.join() for t in threads]
PY

"$NATS" -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$DIR/js" >"$DIR/nats.log" 2>&1 & PIDS+=($!)
python3 "$DIR/peers.py" "$FN_PORT" "$CB_PORT" "$DIR/callbacks" & PIDS+=($!)
echo 0 >"$DIR/callbacks"
export RUST_LOG=warn SLUICE_CALLBACK_ALLOW=127.0.0.0/8 SLUICE_DATA_DIR=$DIR
# glibc copies large blocks with `rep movsb`, which callgrind counts byte by byte: a 17 KB future moved into its
# task would read as 17,000 instructions. Its vector loop instead counts about as the hardware works.
counted() {
    if [ "$1" = "$PROCESS" ]; then
        GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=4294967295 \
            exec valgrind --tool=callgrind --callgrind-out-file="$DIR/callgrind.out" "${@:2}"
    else
        exec "${@:2}"
    fi
}
(cd "$DIR" && counted gateway "$BIN" gateway --nats-url "nats://127.0.0.1:$NATS_PORT" --listen "127.0.0.1:$GW_PORT" \
    --insecure-no-auth >"$DIR/gateway.log" 2>&1) &
GATEWAY=$!; PIDS+=($GATEWAY)
until curl -sf "127.0.0.1:$GW_PORT/healthz" >/dev/null; do sleep 0.2; done
curl -sf -o /dev/null -X POST "127.0.0.1:$GW_PORT/system/functions" -H 'content-type: application/json' \
    -d "{\"service\":\"noop\",\"runtime\":\"http\",\"upstream\":\"http://127.0.0.1:$FN_PORT/\"}"
(cd "$DIR" && counted worker "$BIN" worker --nats-url "nats://127.0.0.1:$NATS_PORT" \
    --metrics-listen "127.0.0.1:$METRICS_PORT" >"$DIR/worker.log" 2>&1) &
WORKER=$!; PIDS+=($WORKER)
until curl -sf "127.0.0.1:$METRICS_PORT/metrics" >/dev/null; do sleep 0.5; done
# A deployed worker has long been listening for cancellations, so a call's first delivery need not read its record.
sleep 8
if [ "$PROCESS" = worker ]; then COUNTED=$WORKER; else COUNTED=$GATEWAY; fi
callgrind_control -z "$COUNTED" >/dev/null
python3 "$DIR/load.py" "$GW_PORT" "$CALLS" "http://127.0.0.1:$CB_PORT/cb"
until [ "$(cat "$DIR/callbacks")" -ge "$CALLS" ]; do sleep 0.5; done
callgrind_control -d "$COUNTED" >/dev/null
sleep 1
total=$(sed -n 's/^summary: //p' "$DIR/callgrind.out.1")
echo "$PROCESS instructions per call: $((total / CALLS)) ($total over $CALLS calls); profile in $DIR"
