#!/usr/bin/env bash
# The latency each relay hop adds: four glint nodes on one redis-server
# (--relay-fanout 1, so each new edge attaches below the last: A → B → C → D),
# and `glint load` publishing to A and watching with N viewers on A (0 hops),
# B (1), C (2) and D (3), one after the other. Prints each run's per-frame
# latency (publisher send → viewer receive) and the origin's egress.
#
#   scripts/bench-mesh-hops.sh [viewers]      (default 100)
set -euo pipefail
viewers=${1:-100}
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
go build -o "$work/glint" ./cmd/glint
redis-server --port 16390 --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
sleep 0.5
key=mesh-hops-stream-key-0123
for i in 0 1 2 3; do
	mkdir -p "$work/n$i"
	"$work/glint" serve --listen 127.0.0.1:1809$i --rtc-ip 127.0.0.1 --rtc-port 0 --rtmp-listen "" --data-dir "$work/n$i" \
		--log-level warn --stream-key demo=$key --redis redis://127.0.0.1:16390/0 --node-id n$i \
		--hls-off --relay-fanout 1 --relay-linger 10m --max-sessions 1000 --max-viewers-per-address 1000 \
		--offer-rate 0 >"$work/n$i.log" 2>&1 &
done
sleep 2
printf '%-5s %8s %8s %8s %8s %8s %s\n' hops joined p50_ms p99_ms sock_p50 sock_p99 origin_relays
for hops in 0 1 2 3; do
	out=$("$work/glint" load --whip http://127.0.0.1:18090/whip/demo --whep http://127.0.0.1:1809$hops/whep/demo \
		--token $key --viewers "$viewers" --simulcast --media synthetic --window 20s --ramp 5s --json 2>"$work/load$hops.err")
	egress=$(curl -s http://127.0.0.1:18090/metrics | awk '/^glint_mesh_relay_children /{print $2}')
	echo "$out" | python3 -c '
import json,sys
r=json.load(sys.stdin); l=r["latency"]; s=r.get("frame_latency_at_socket") or {}
print("%-5s %8d %8.1f %8.1f %8.1f %8.1f %s" % (sys.argv[1], r["viewers_joined"], l["p50_ms"], l.get("p99_ms",0), s.get("p50_ms",0), s.get("p99_ms",0), sys.argv[2]))
' "$hops" "$egress"
done
"$work/glint" mesh --redis redis://127.0.0.1:16390/0
