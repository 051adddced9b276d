#!/usr/bin/env bash
# Installs the real apps' packages under their own names (an npm alias such as express-4 is not
# what instrumentations see in production) into a cache outside the repository, once per version,
# and prints the directory whose node_modules holds them.
set -euo pipefail
versions="express@4.22.1"
cache="${SPANPROF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/span-profiling}/corpus"
dir="$cache/$(echo "$versions" | tr ' @/' '__-')"
if [ ! -d "$dir/node_modules" ]; then
  echo "installing the real-app corpus ($versions) into $dir" >&2
  mkdir -p "$cache"
  tmp="$(mktemp -d "$cache/.tmp.XXXXXX")"
  # shellcheck disable=SC2086
  (cd "$tmp" && npm install --no-save --no-package-lock --no-audit --no-fund --silent $versions >&2)
  rm -rf "$dir" && mv "$tmp" "$dir"
fi
echo "$dir"
