#!/usr/bin/env bash
# bench-rtmp-latency.sh [RUNS]: the latency a node adds between an RTMP
# encoder and its WebRTC viewers, and the transcoder's CPU, as in
# docs/performance.md: ffmpeg (720p30, 2 Mbit/s, a keyframe every 2 s)
# without B-frames (its H.264 passed through; ffmpeg makes the two layers
# under it and the Opus) and with two (every layer transcoded), 20 viewers.
# Latency runs from each frame's arrival at the node (its abs-capture-time)
# to a viewer's receipt of its first packet. The node and its ffmpeg on
# CPU 0, the load tool and the encoder on CPU 1, on loopback.
# GLINT_BIN=path uses a glint binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
bin=$(scripts/glint-bin.sh)
for bf in 0 2; do
  for r in $(seq "$runs"); do
    data=$(mktemp -d)
    taskset -c 0 "$bin" serve --listen 127.0.0.1:18080 --rtc-ip 127.0.0.1 --rtc-port 18443 --rtmp-listen 127.0.0.1:11935 \
      --data-dir "$data" --stream-key demo=latency-bench-key-1 --log-level warn --hls-off --offer-rate 0 >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 50); do curl -fs http://127.0.0.1:18080/healthz >/dev/null && break; sleep 0.1; done
    taskset -c 1 "$bin" load --rtmp rtmp://127.0.0.1:11935/live/latency-bench-key-1 --rtmp-bframes $bf --rtmp-gop 2s \
      --whep http://127.0.0.1:18080/whep/demo --server-pid $pid --viewers 20 --ramp 2s --settle 3s --window 15s \
      --fps 30 --bitrate 2000000 --json 2>/dev/null | python3 -c "
import json,sys; r=json.load(sys.stdin); s=r['server']
print('B-frames $bf run $r: latency p50 %.1f p99 %.1f ms (%d frames x viewers); node %.0f %% of a core, transcoder %.0f %%' % (
  r['latency']['p50_ms'], r['latency']['p99_ms'], r['latency']['samples'], s['cpu_percent'], s['transcoder_cpu_percent']))"
    kill $pid; wait $pid 2>/dev/null || true; rm -rf "$data"
  done
done
