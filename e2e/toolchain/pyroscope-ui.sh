#!/usr/bin/env bash
# Builds Pyroscope with its web UI embedded, for the local Pyroscope image of
# the demo and the kind suite, and prints the binary's path (last stdout line).
#
#   bash e2e/toolchain/pyroscope-ui.sh
#
# The toolchain's `pyroscope` (build.sh) has no UI: a Go build leaves out the
# frontend. Its Go module carries the frontend's source (public/app,
# package.json, yarn.lock), so this script:
#   1. copies that source out of the Go module cache;
#   2. installs the frontend's packages from the npm registry with yarn 1
#      (from npm), the lockfile frozen, install scripts off (none is needed
#      to build, and some would download binaries from elsewhere);
#   3. runs its production webpack build into public/build;
#   4. builds cmd/pyroscope with -tags embedassets through the toolchain's
#      wrapper module (modules/pyroscope: same dependency versions as the
#      `pyroscope` tool), the copy replacing the module.
# One change to upstream's package.json: @grafana/flamegraph 11.4.0, which
# v1.12.0 pins, is not on the npm registry; 11.3.1 is, with the same
# dependencies, and its @grafana/data and @grafana/ui are held at 11.4.0 so
# that one copy of each is installed (yarn.lock is regenerated for that one
# entry, then frozen).
#
# Cache: <toolchain cache>/pyroscope-ui-<version>/pyroscope, rebuilt when this
# script, versions.env or the wrapper module change; yarn's package cache in
# <cache>/yarn. A cold build takes about 5 minutes on 2 cores and 4 GB of
# memory at its peak (webpack); the copy is removed afterwards.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${SPANPROF_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/span-profiling/toolchain}"
# shellcheck source=versions.env
source "$HERE/versions.env"
# shellcheck source=../lib/progress.sh
source "$HERE/../lib/progress.sh"
log() { printf 'pyroscope-ui: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

FLAMEGRAPH_ON_REGISTRY=11.3.1
YARN=yarn@1.22.22
version=$PYROSCOPE_VERSION
module="$HERE/modules/pyroscope"
dest="$CACHE/pyroscope-ui-$version"
stamp="$({ cat "$0" "$HERE/versions.env" "$module/go.mod" "$module/go.sum"; node --version; } | sha256sum | cut -c1-16)"

if [[ -x $dest/pyroscope && -f $dest/.stamp && $(<"$dest/.stamp") == "$stamp" ]]; then
  echo "$dest/pyroscope"
  exit 0
fi
command -v go >/dev/null || die "go is not installed"
command -v node >/dev/null || die "node is not installed"
mkdir -p "$CACHE/logs"
exec 9>"$CACHE/.lock-pyroscope-ui"
flock 9
if [[ -x $dest/pyroscope && -f $dest/.stamp && $(<"$dest/.stamp") == "$stamp" ]]; then
  echo "$dest/pyroscope"
  exit 0
fi

work="$(mktemp -d "$CACHE/.tmp-pyroscope-ui-XXXXXX")"
trap 'step_kill; rm -rf "$work"' EXIT
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}" GOWORK=off
src_dir="$(cd "$module" && GOFLAGS=-mod=readonly go mod download -json "github.com/grafana/pyroscope@$version" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);if(j.Error)throw new Error(j.Error);process.stdout.write(j.Dir)})')"
[[ -f $src_dir/package.json && -d $src_dir/public/app ]] || die "no frontend source in $src_dir"
log "building Pyroscope $version with its UI (once; cached in $dest)"

copy_and_patch() {
  cp -R "$src_dir" "$work/src"
  chmod -R u+w "$work/src"
  node -e '
    const fs = require("fs");
    const file = process.argv[1], version = process.argv[2];
    const p = JSON.parse(fs.readFileSync(file, "utf8"));
    p.dependencies["@grafana/flamegraph"] = version;
    p.resolutions = { ...p.resolutions, "@grafana/flamegraph/@grafana/data": "11.4.0", "@grafana/flamegraph/@grafana/ui": "11.4.0" };
    fs.writeFileSync(file, JSON.stringify(p, null, 2) + "\n");
  ' "$work/src/package.json" "$FLAMEGRAPH_ON_REGISTRY"
}

yarn_install() {
  cd "$work/src"
  # yarn fetches from the registry npm is configured with.
  YARN_REGISTRY="$(npm config get registry)"
  export YARN_REGISTRY YARN_CACHE_FOLDER="$CACHE/yarn" CYPRESS_INSTALL_BINARY=0 PUPPETEER_SKIP_DOWNLOAD=1 HUSKY=0 npm_config_yes=true
  # The first pass settles the one changed lock entry; the second checks that nothing else moved.
  # yarn 1 can fail to copy a file out of a package cache it is filling in the same run (ENOENT
  # copyfile, seen on a cold cache): the first pass is tried once more, from the module's own
  # lockfile, with the cache the failed try filled. Never without the lockfile: resolved afresh,
  # today's releases need a newer Node than the build runs on.
  nice -n 10 npx --yes "$YARN" install --ignore-scripts --non-interactive --network-timeout 600000 || {
    echo "yarn install failed; once more with the package cache it filled" >&2
    cp "$src_dir/yarn.lock" yarn.lock && chmod u+w yarn.lock
    nice -n 10 npx --yes "$YARN" install --ignore-scripts --non-interactive --network-timeout 600000
  } || return 1
  [[ -f yarn.lock ]] || { echo "yarn.lock is gone" >&2; return 1; }
  nice -n 10 npx --yes "$YARN" install --ignore-scripts --non-interactive --frozen-lockfile --network-timeout 600000
}

webpack_build() {
  cd "$work/src"
  NODE_OPTIONS="--max-old-space-size=6144" nice -n 10 npx --yes "$YARN" build
  [[ -f public/build/index.html ]] || { echo "no public/build/index.html" >&2; return 1; }
}

go_build_ui() {
  mkdir -p "$work/module"
  cp "$module/go.mod" "$module/go.sum" "$work/module/"
  cp "$module"/*.go "$work/module/" 2>/dev/null || true
  cd "$work/module"
  go mod edit -replace="github.com/grafana/pyroscope=$work/src"
  CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" nice -n 10 go build -trimpath -tags embedassets \
    -ldflags="-s -w -X github.com/grafana/pyroscope/pkg/util/build.Version=${version#v} -X github.com/grafana/pyroscope/pkg/util/build.Branch=HEAD" \
    -o "$work/pyroscope" github.com/grafana/pyroscope/cmd/pyroscope
}

STEP_TOTAL=4
STEP_N=0
step_run "pyroscope-ui/copy-$version" "Pyroscope UI: copy the source from the Go module" "$CACHE/logs/pyroscope-ui.log" copy_and_patch || die "copying the source failed"
step_run "pyroscope-ui/yarn-$version" "Pyroscope UI: install its npm packages (yarn, lockfile frozen)" "$CACHE/logs/pyroscope-ui-yarn.log" yarn_install || die "yarn install failed"
step_run "pyroscope-ui/webpack-$version" "Pyroscope UI: webpack production build" "$CACHE/logs/pyroscope-ui-webpack.log" webpack_build || die "the webpack build failed"
step_run "pyroscope-ui/go-$version" "Pyroscope UI: go build with the UI embedded" "$CACHE/logs/pyroscope-ui-go.log" go_build_ui || die "go build failed"

mkdir -p "$work/out"
mv "$work/pyroscope" "$work/out/pyroscope"
echo "$stamp" >"$work/out/.stamp"
rm -rf "$dest"
mv -T "$work/out" "$dest"
echo "$dest/pyroscope"
