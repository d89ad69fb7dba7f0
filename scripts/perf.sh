#!/usr/bin/env bash
# perf.sh VIEWERS [glint load flags...]: one measured run of a fresh Glint
# node, as in docs/performance.md. The node runs on CPU 0 and the load tool
# on CPU 1 (taskset), each in its own process, on loopback; prints the
# load tool's report (add --json for JSON).
set -euo pipefail
cd "$(dirname "$0")/.."
viewers=${1:-100}; shift || true
bin=$(mktemp -d)/glint
go build -o "$bin" ./cmd/glint
data=$(mktemp -d)
taskset -c 0 "$bin" serve --listen 127.0.0.1:18080 --rtc-ip 127.0.0.1 --rtc-port 18443 \
  --data-dir "$data" --stream-key demo=perf-run-key-1234 --log-level warn &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 50); do curl -fs http://127.0.0.1:18080/healthz >/dev/null && break; sleep 0.1; done
taskset -c 1 "$bin" load --whip http://127.0.0.1:18080/whip/demo --token perf-run-key-1234 \
  --metrics http://127.0.0.1:18080/metrics --server-pid "$pid" --viewers "$viewers" "$@"
