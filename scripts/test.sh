#!/usr/bin/env bash
# `npm test`: the whole test suite, as root. Installs the Debian packages the tests need, builds what is stale,
# runs every test file with Node's test runner one file at a time (the suites mount filesystems, create loop
# devices and run daemons: running files in parallel would only make them fight over the 2 cores and the
# kernel), then the devicemapper lane inside a VM, and prints one summary. Exits non-zero when anything failed.
#
# Environment:
#   STRATA_TEST_FILES="dist/test/e2e/containerd.test.js …"  run only these files (default: every test file)
#   STRATA_TEST_DRIVERS=overlay,native                      limit the driver suites (see test/helpers/drivers.ts)
#   STRATA_TEST_TIMEOUT_MS                                  per-test timeout (default 20 minutes)
#   STRATA_TEST_OUT=DIR                                     where the TAP logs go (default: a temp dir)
#   STRATA_TEST_LANES="host devmapper"                      which lanes run (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

if [ "$(id -u)" != 0 ]; then
  echo "test.sh: run as root: the tests mount filesystems, use loop devices and run containerd/dockerd" >&2
  exit 1
fi

t0=$(date +%s)
section() { printf '\n==> %s (+%ss)\n' "$1" "$(($(date +%s) - t0))"; }

section "dependencies"
bash scripts/install-deps.sh
# containerd 2.x for the end-to-end suite, fetched once into a cache (the suite skips 2.x if this fails).
if [ -f ../shared/tools/containerd2.sh ]; then
  bash ../shared/tools/containerd2.sh "${STRATA_CONTAINERD2_DIR:-/var/cache/strata-test/containerd2}" >/dev/null ||
    echo "test.sh: could not fetch containerd 2.x; its end-to-end tests will skip" >&2
fi
if [ ! -d node_modules ]; then
  # A fresh checkout: the install builds everything (codegen, TypeScript, native addon, better-sqlite3).
  npm install --no-audit --no-fund
fi

section "build"
# Rebuild when a source is newer than the build. tsc rewrites every output on each build, so the compiled CLI's
# mtime is the build's time (npm install's postinstall build counts too). Generated code and dist/ are never
# committed, so a fresh clone always builds, here or in npm install.
newer_than() { # reference file, dirs/files...: prints the first source newer than the reference
  local ref=$1
  shift
  find "$@" -newer "$ref" \( -name '*.ts' -o -name '*.proto' -o -name '*.c' -o -name '*.h' -o -name '*.gyp' -o -name '*.json' \) \
    -not -path 'src/gen/*' -not -path 'native/build/*' -not -path '*/node_modules/*' -print -quit 2>/dev/null
}
addon=$(compgen -G 'native/build/Release/*.node' | head -n 1 || true)
if [ -z "$addon" ] || [ -n "$(find native -newer "$addon" \( -name '*.c' -o -name '*.h' -o -name '*.gyp' \) -not -path 'native/build/*' -print -quit)" ]; then
  echo "building the native addon"
  npx node-gyp rebuild --directory=native >/dev/null
fi
ref=dist/src/cli/strata.js
if [ ! -f "$ref" ] || [ -n "$(newer_than "$ref" src drivers test bench native proto package.json tsconfig.json)" ]; then
  npm run build
else
  echo "dist/ is up to date"
fi

# Test files: the compiled form of every test/**/*.test.ts that exists now (a stale dist/ file of a deleted test
# is not run).
if [ -n "${STRATA_TEST_FILES:-}" ]; then
  read -r -a files <<<"$STRATA_TEST_FILES"
else
  mapfile -t files < <(find test -name '*.test.ts' | sort | sed -e 's|^|dist/|' -e 's|\.ts$|.js|')
fi

out=${STRATA_TEST_OUT:-$(mktemp -d /tmp/strata-test.XXXXXX)}
mkdir -p "$out"
declare -A lane_status lane_secs
lanes=()

# STRATA_TEST_LANES="host" (or "devmapper") runs only those lanes; default: all.
lane_wanted() { [ -z "${STRATA_TEST_LANES:-}" ] || [[ " $STRATA_TEST_LANES " == *" $1 "* ]]; }

run_lane() { # name, command...
  local name=$1 s rc
  shift
  lanes+=("$name")
  s=$(date +%s)
  set +e
  "$@"
  rc=$?
  set -e
  lane_status[$name]=$rc
  lane_secs[$name]=$(($(date +%s) - s))
}

# When this run's VM lane runs its quota group, the host lane need not boot a VM of its own for the same suites
# (test/native/quota-vm.test.ts skips on this).
if lane_wanted devmapper && [[ " ${STRATA_DM_GROUPS:-driver hostile quota crash e2e conformance} " == *" quota "* ]]; then
  export STRATA_DM_LANE_QUOTA=1
fi

section "tests on the host: ${#files[@]} files"
lane_wanted host && run_lane host node --test --test-concurrency=1 --test-timeout="${STRATA_TEST_TIMEOUT_MS:-1200000}" \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$out/host.tap" \
  "${files[@]}"

# ---- devicemapper VM lane ----------------------------------------------------------------------------------
# This kernel has no dm-thin: the devicemapper suite runs inside ../shared/dm-vm (one VM for the whole lane).
if lane_wanted devmapper; then section "devicemapper suite in a VM"; run_lane devmapper bash scripts/dm-lane.sh "$out/dm-lane"; fi
for lane in host devmapper; do
  lane_wanted "$lane" || echo "test.sh: the $lane lane is NOT run (STRATA_TEST_LANES=$STRATA_TEST_LANES)"
done
# ---- end of the devicemapper VM lane -----------------------------------------------------------------------

section "summary"
failed=0
for name in "${lanes[@]}"; do
  rc=${lane_status[$name]}
  printf '%-12s %s  (%ss)\n' "$name" "$([ "$rc" = 0 ] && echo PASS || echo "FAIL (exit $rc)")" "${lane_secs[$name]}"
  [ "$rc" = 0 ] || failed=1
done
# Each TAP log's own totals (the runner prints them last) and which tests failed in it.
while IFS= read -r tap; do
  printf '%s: %s\n' "${tap#"$out"/}" "$(grep -E '^# (tests|pass|fail|cancelled|skipped) ' "$tap" | tail -n 5 | tr '\n' ' ')"
  if grep -qE '^\s*not ok ' "$tap"; then
    grep -E '^\s*not ok ' "$tap" | sed -e 's/^/    /' | head -n 60
  fi
done < <(find "$out" -name '*.tap' | sort)
echo "logs: $out"
echo "total: $(($(date +%s) - t0))s"
exit "$failed"
