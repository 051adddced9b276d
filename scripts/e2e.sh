#!/usr/bin/env bash
# The kind end-to-end suite: what `npm run e2e` runs after `npm run build`.
# Builds the whole toolchain (kind, Kubernetes, helm, Pyroscope, Jaeger, ...)
# into its cache on first use, then runs e2e/test/**/*.e2e.ts, which builds the
# images (SPANPROF_E2E_IMAGES=local|published) and creates the cluster.
# Extra arguments go to mocha.
set -euo pipefail
cd "$(dirname "$0")/.."
SPANPROF_TOOLCHAIN_DIR="$(bash e2e/toolchain/build.sh all | tail -n 1)"
export SPANPROF_TOOLCHAIN_DIR
exec npx mocha --timeout 1800000 "$@" 'e2e/test/**/*.e2e.ts'
