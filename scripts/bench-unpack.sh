#!/usr/bin/env bash
# The unpack benchmark (bench/unpack/bench.ts) on the compiled tree: strata apply and daemon Unpack vs GNU tar
# and containerd 1.6, gzip and zstd, medians of STRATA_BENCH_RUNS (default 3) cold runs. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/bench/unpack/bench.js ] || npx tsc -p .
exec node dist/bench/unpack/bench.js "$@"
