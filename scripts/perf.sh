#!/usr/bin/env bash
# perf.sh VIEWERS [glint load flags...]: one measured run of a fresh Glint
# node, as in docs/performance.md. By default the node runs on CPU 0 and
# the load tool on CPU 1 (taskset), each in its own process, on loopback;
# prints the load tool's report (add --json for JSON).
#
#   SERVER_CPUS=0,1 LOAD_CPUS=0,1   cores for each (taskset -c lists)
#   SERVE_FLAGS="--fanout-workers -1"   extra flags for glint serve
#   GLINT_BIN=path                      a glint binary to use instead of building one
#   LOAD_IDLE=1                         the load tool under SCHED_IDLE (chrt -i 0): it gets
#                                       only the CPU time the node leaves, and a woken node
#                                       thread takes a core back from it at once
#   SERVER_RT=1                         the node at real-time priority (chrt -f 10) instead;
#                                       starves the kernel's own threads: for comparison only
set -euo pipefail
cd "$(dirname "$0")/.."
viewers=${1:-100}; shift || true
server_cpus=${SERVER_CPUS:-0}
load_cpus=${LOAD_CPUS:-1}
bin=$(scripts/glint-bin.sh)
data=$(mktemp -d)
idle=() rt=()
if [ "${LOAD_IDLE:-}" = 1 ]; then idle=(chrt -i 0); fi
if [ "${SERVER_RT:-}" = 1 ]; then rt=(chrt -f 10); fi
# shellcheck disable=SC2086 # SERVE_FLAGS is a list of flags
"${rt[@]}" taskset -c "$server_cpus" "$bin" serve --listen 127.0.0.1:18080 --rtc-ip 127.0.0.1 --rtc-port 18443 --rtmp-listen 127.0.0.1:11935 \
  --data-dir "$data" --stream-key demo=perf-run-key-1234 --log-level warn \
  --max-viewers-per-address 100000 --offer-rate 0 ${SERVE_FLAGS:-} >/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 50); do curl -fs http://127.0.0.1:18080/healthz >/dev/null && break; sleep 0.1; done
"${idle[@]}" taskset -c "$load_cpus" "$bin" load --whip http://127.0.0.1:18080/whip/demo --token perf-run-key-1234 \
  --metrics http://127.0.0.1:18080/metrics --server-pid "$pid" --viewers "$viewers" "$@"
