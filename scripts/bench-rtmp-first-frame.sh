#!/usr/bin/env bash
# bench-rtmp-first-frame.sh [RUNS]: how soon 50 WebRTC viewers of an RTMP
# source (ffmpeg, 720p30, a keyframe every 2 s) see their first frame, as
# in docs/performance.md. The node on CPU 0, the load tool on CPU 1, on
# loopback. GLINT_BIN=path uses a glint binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
bin=$(scripts/glint-bin.sh)
for r in $(seq $runs); do
  data=$(mktemp -d)
  # shellcheck disable=SC2064
  taskset -c 0 "$bin" serve --listen 127.0.0.1:18080 --rtc-ip 127.0.0.1 --rtc-port 18443 --rtmp-listen 127.0.0.1:11935 \
    --data-dir $data --stream-key demo=gop-bench-key-12345 --log-level warn --hls-off --max-viewers-per-address 1000 --offer-rate 0 >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 50); do curl -fs http://127.0.0.1:18080/healthz >/dev/null && break; sleep 0.1; done
  taskset -c 1 "$bin" load --rtmp rtmp://127.0.0.1:11935/live/gop-bench-key-12345 --rtmp-gop 2s --whep http://127.0.0.1:18080/whep/demo \
    --viewers 50 --ramp 10s --settle 1s --window 3s --fps 30 --bitrate 2000000 --json 2>/dev/null | python3 -c "
import json,sys; r=json.load(sys.stdin)
print('run $r joined', r['viewers_joined'], 'first frame p50 %.0f p95 %.0f ms; first keyframe p50 %.0f p95 %.0f ms' % (r['time_to_first_frame']['p50_ms'], r['time_to_first_frame'].get('p95_ms',0), r['time_to_first_keyframe']['p50_ms'], r['time_to_first_keyframe'].get('p95_ms',0)))"
  kill $pid; wait $pid 2>/dev/null; rm -rf $data
done
