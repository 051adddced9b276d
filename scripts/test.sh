#!/usr/bin/env bash
# The whole test suite: what `npm test` runs after `npm run build`.
# - the agent suites also on Node 22, 24 and 26 (binaries from npm, cached);
# - the real Pyroscope, Jaeger, etcd, kube-apiserver, kubectl and helm the
#   integration suites need, built from Go modules into a cache on first use
#   (see e2e/toolchain/README.md; a cold build takes a while, later runs reuse it);
# - Chromium for the demo page's browser test (scripts/chromium.sh: Debian's
#   package, installed with apt when missing and run as root).
# Extra arguments go to mocha (e.g. --grep webhook).
set -euo pipefail
cd "$(dirname "$0")/.."

SPANPROF_TEST_NODES="$(bash injector/test/node-versions.sh)"
export SPANPROF_TEST_NODES
SPANPROF_TOOLCHAIN_DIR="$(bash e2e/toolchain/build.sh pyroscope jaeger etcd kube-apiserver kubectl helm | tail -n 1)"
export SPANPROF_TOOLCHAIN_DIR
SPANPROF_CHROMIUM="$(bash scripts/chromium.sh)"
export SPANPROF_CHROMIUM

exec npx mocha "$@" \
  'injector/test/**/*.test.ts' \
  'operator/test/**/*.test.ts' \
  'charts/test/**/*.test.ts' \
  'e2e/test/**/*.test.ts' \
  'examples/test/**/*.test.ts'
