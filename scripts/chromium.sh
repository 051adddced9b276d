#!/usr/bin/env bash
# Prints the Chromium the browser tests drive (through playwright-core).
#
#   bash scripts/chromium.sh        # prints e.g. /usr/bin/chromium
#
# SPANPROF_CHROMIUM, when set, names it. Otherwise the first of chromium and
# chromium-browser on PATH; if there is none, as root on Debian, Debian's
# chromium package is installed with apt. Playwright's own browser downloads
# are never used.
set -euo pipefail
log() { echo "chromium.sh: $*" >&2; }

if [ -n "${SPANPROF_CHROMIUM:-}" ]; then
  [ -x "$SPANPROF_CHROMIUM" ] || { log "SPANPROF_CHROMIUM=$SPANPROF_CHROMIUM is not an executable"; exit 1; }
  echo "$SPANPROF_CHROMIUM"
  exit 0
fi
for name in chromium chromium-browser; do
  if command -v "$name" >/dev/null 2>&1; then
    command -v "$name"
    exit 0
  fi
done
[ "$(id -u)" = 0 ] || { log "no chromium on PATH and installing it needs root: install Debian's chromium, or set SPANPROF_CHROMIUM"; exit 1; }
command -v apt-get >/dev/null 2>&1 || { log "no chromium on PATH: install Chromium, or set SPANPROF_CHROMIUM"; exit 1; }
log "installing Debian's chromium with apt (once)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq chromium >&2
command -v chromium
