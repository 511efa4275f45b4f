#!/usr/bin/env bash
# `npm run bench`: the benchmarks, each against a peer measured in the same run, printing ratios.
#   bench/ops     Stat, Prepare+Commit, List(100), Remove of 2000 files over the socket, per driver, next to
#                 the bare filesystem operations they need
#   bench/unpack  strata apply / daemon unpack vs GNU tar -xzf / --zstd -xf vs containerd 1.6 `ctr image import`
#                 on a loopback ext4, a loopback btrfs and a zfs-fuse pool (--fs / STRATA_BENCH_FS), per driver
# Run as root on a quiet machine: the figures are wall-clock times. BENCH=ops or BENCH=unpack runs one of them;
# extra arguments go to the ops benchmark (e.g. --drivers overlay,native --json out.json).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench.sh: run as root (the benchmarks mount filesystems)" >&2; exit 1; }
bash scripts/install-deps.sh
# bench/ops times the operations with a grpc-go client too (containerd's side of the socket), built from Debian's
# Go toolchain and grpc-go sources: benchmark-only packages, so installed here rather than by install-deps.sh.
if ! command -v go >/dev/null || [ ! -d /usr/share/gocode/src/google.golang.org/grpc ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go golang-google-grpc-dev >/dev/null
fi
[ -f dist/src/cli/strata.js ] || npm run build
which="${BENCH:-all}"
if [ "$which" = all ] || [ "$which" = ops ]; then
  echo "==> snapshot operations (bench/ops)"
  node dist/bench/ops/run.js "$@"
fi
if [ "$which" = all ] || [ "$which" = unpack ]; then
  echo "==> layer unpack (bench/unpack)"
  node dist/bench/unpack/bench.js
fi
