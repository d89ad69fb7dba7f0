#!/usr/bin/env bash
# Installs what Glint's tests need when it is missing: Debian's Chromium and
# Firefox ESR for the browser tests, iproute2 for the network namespace the
# Firefox test runs in, ffmpeg for the load tool's real H.264 clip,
# redis-server for chat's multi-node tests. Tests never skip for a missing
# tool; they fail and say how to install it.
set -euo pipefail

need=()
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null && ! command -v google-chrome >/dev/null; then
  need+=(chromium)
fi
command -v firefox-esr >/dev/null || command -v firefox >/dev/null || need+=(firefox-esr)
command -v ip >/dev/null || need+=(iproute2)
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v redis-server >/dev/null || need+=(redis-server)
if ! command -v go >/dev/null; then
  echo "Go is not installed (Go 1.26 or newer, e.g. /usr/local/go/bin)." >&2
  exit 1
fi
[ ${#need[@]} -eq 0 ] && exit 0

echo "Installing test dependencies: ${need[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else
    echo "Need root to install ${need[*]}: run 'apt-get install -y ${need[*]}' as root." >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
