#!/usr/bin/env bash
# fanout-matrix.sh OUTDIR [REPEATS]: the fan-out figures of docs/performance.md.
# Runs scripts/perf.sh for 100, 200 and 300 viewers with the server on one
# core and on two, with fan-out lanes and without (--fanout-workers -1),
# interleaved, REPEATS times (default 2), one JSON report per run.
# LOAD_IDLE=1 (see perf.sh) runs the load tool under SCHED_IDLE.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: fanout-matrix.sh OUTDIR [REPEATS]}
repeats=${2:-2}
mkdir -p "$out"
GLINT_BIN=$(scripts/glint-bin.sh)
export GLINT_BIN
for r in $(seq "$repeats"); do
  for viewers in 100 200 300; do
    for cfg in "1core-inline:0:1:-1" "1core-lanes:0:1:1" "2core-inline:0,1:0,1:-1" "2core-lanes:0,1:0,1:2"; do
      IFS=: read -r name scpu lcpu workers <<< "$cfg"
      echo "run $r: $viewers viewers, $name" >&2
      SERVER_CPUS=$scpu LOAD_CPUS=$lcpu SERVE_FLAGS="--fanout-workers $workers" \
        ./scripts/perf.sh "$viewers" --ramp 10s --window 15s --json > "$out/$name-$viewers-$r.json" 2>/dev/null || echo "failed" >&2
    done
  done
done
