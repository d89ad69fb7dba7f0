#!/usr/bin/env bash
# glint-bin.sh: prints the path of a glint binary for the benchmark
# scripts: $GLINT_BIN when set, else a fresh build of ./cmd/glint.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${GLINT_BIN:-}" ]; then
  echo "$GLINT_BIN"
  exit
fi
bin=$(mktemp -d)/glint
go build -o "$bin" ./cmd/glint
echo "$bin"
