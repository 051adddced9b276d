#!/usr/bin/env bash
# Installs a real app's packages under their own names (an npm alias such as express-4 is not what
# instrumentations see in production) into a cache outside the repository, once per version, listed
# in its package.json as an app lists them (the agent reads them to tell whether ES modules load), and
# prints the directory whose node_modules holds them.
#   bash injector/test/corpus.sh express4|nestjs|next
set -euo pipefail
case "${1:-}" in
  express4) packages="express@4.22.1" ;;
  nestjs) packages="@nestjs/core@12.6.3 @nestjs/common@12.6.3 @nestjs/platform-express@12.6.3 reflect-metadata@0.2.2 rxjs@7.8.2" ;;
  next) packages="next@16.5.0 react@19.3.1 react-dom@19.3.1" ;;
  *) echo "usage: corpus.sh express4|nestjs|next" >&2; exit 2 ;;
esac
cache="${SPANPROF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/span-profiling}/corpus"
dir="$cache/$1-$(echo "2 $packages" | md5sum | cut -c1-12)"
if [ ! -d "$dir/node_modules" ]; then
  echo "installing the real-app corpus $1 ($packages) into $dir" >&2
  mkdir -p "$cache"
  tmp="$(mktemp -d "$cache/.tmp.XXXXXX")"
  # shellcheck disable=SC2086
  (cd "$tmp" && echo '{"private":true}' > package.json && npm install --save --no-package-lock --no-audit --no-fund --silent $packages >&2)
  rm -rf "$dir" && mv "$tmp" "$dir"
fi
echo "$dir"
