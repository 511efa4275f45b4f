#!/usr/bin/env bash
# The devicemapper lane: this kernel has no device-mapper, so the whole devmapper suite runs inside ONE VM
# (../shared/dm-vm, Debian 6.1 kernel with dm-thin, XFS quota and quota_v2). Compile on the host first
# (scripts/test.sh does): the VM runs plain compiled JS.
#
# The VM does not run the checkout's dist/ itself: before booting, dist/ and the native addon are copied into a
# private run directory (.dm-lane/run.*, everything else symlinked to the checkout), so a rebuild of dist/ while the
# VM runs (another engineer, another CI step; the 9p share is cache=loose) cannot feed the guest half-written JS.
#
# Inside the VM, two streams of groups run side by side (one per vCPU), cheapest first in each; every group is one
# `node --test` run under its own time limit, and a failing or timed-out group does not stop the others:
#   stream 1:
#     driver      dist/test/devmapper/driver.test.js              device-level driver tests
#     hostile     dist/test/devmapper/hostile.test.js             the unpacker's hostile corpus on a thin device
#     quota       native/quota, drivers/quota, volumes/dir        project quotas, which the host kernel lacks
#     crash       dist/test/crash/crash.test.js                   kill -9 between dm steps, restart, Cleanup
#   stream 2:
#     conformance-lifecycle, conformance-content, conformance-walk   the shared suite, devmapper only
#     e2e         dist/test/e2e/containerd.test.js                containerd 1.6 on devmapper snapshots
#
# Software emulation makes every dmsetup run, mount and mkfs cost 10-30x real hardware, so the stress tests run
# smaller here (the host runs them at full size): STRATA_TEST_LAYERS=32 (128), STRATA_TEST_VIEWS=120 (250),
# STRATA_CRASH_ITERATIONS=6 (30).
#
# Usage: scripts/dm-lane.sh [OUT_DIR]       (as root; OUT_DIR receives the TAP logs)
# Environment:
#   DM_VM_TIMEOUT (default 1200: the lane's 20-minute budget, the outer guard), DM_VM_MEM (4096: two streams of suites),
#   STRATA_DM_GROUPS ("driver hostile quota crash e2e conformance"; "conformance" selects its three parts),
#   STRATA_DM_GROUP_TIMEOUT_<group, - as _> (seconds: overrides that group's limit, see `limit` below), STRATA_CRASH_ITERATIONS, STRATA_TEST_LAYERS, STRATA_TEST_VIEWS,
#   STRATA_DM_FS (ext4|xfs for the shared suites), STRATA_DM_VM (path of dm-vm-run.sh).
# In CI (CI=true) a missing VM prerequisite is a failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
groups=${STRATA_DM_GROUPS:-driver hostile quota crash e2e conformance}

if [ "${1:-}" != --inside ]; then
  out=${1:-$(mktemp -d /tmp/strata-dm-lane.XXXXXX)}
  mkdir -p "$out"
  vm=${STRATA_DM_VM:-$repo/../shared/dm-vm/dm-vm-run.sh}
  missing=""
  [ -x "$vm" ] || missing="$vm"
  command -v qemu-system-x86_64 >/dev/null || missing="$missing qemu-system-x86_64"
  command -v busybox >/dev/null || [ -x /bin/busybox ] || missing="$missing busybox-static"
  [ -f dist/test/devmapper/driver.test.js ] || missing="$missing dist/ (build first: npx tsc -p .)"
  if [ -n "$missing" ]; then
    if [ "${CI:-}" = true ]; then
      echo "dm-lane: cannot run the devicemapper lane: missing $missing" >&2
      exit 1
    fi
    echo "dm-lane: SKIP: missing $missing" >&2
    exit 0
  fi
  # A private copy of what the VM runs (see the header). It lives in the checkout (the share the VM can write, and
  # gitignored) and the VM's TAP logs land in it; both are copied out and the directory is removed afterwards.
  mkdir -p .dm-lane
  run=$(mktemp -d "$repo/.dm-lane/run.XXXXXX")
  trap 'rm -rf "$run"' EXIT
  for f in * .[!.]*; do
    case $f in dist | native | .dm-lane | .git) ;; *) ln -s "$repo/$f" "$run/$f" ;; esac
  done
  cp -a dist "$run/dist"
  rm -rf "$run/dist/dm-lane"
  mkdir -p "$run/native/build/Release"
  for f in native/*; do [ "$f" = native/build ] || ln -s "$repo/$f" "$run/$f"; done
  cp -a native/build/Release/*.node "$run/native/build/Release/"
  cp scripts/dm-lane.sh "$run/dm-lane.sh"
  logs=$run/logs
  mkdir -p "$logs"
  set +e
  DM_VM_TIMEOUT=${DM_VM_TIMEOUT:-1200} DM_VM_MEM=${DM_VM_MEM:-4096} \
    DM_VM_EXTRA_MODULES="quota_v2 quota_tree ${DM_VM_EXTRA_MODULES:-}" \
    STRATA_DM_BUDGET=${DM_VM_TIMEOUT:-1200} \
    DM_VM_PASSENV="STRATA_DM_BUDGET STRATA_DM_GROUPS STRATA_CRASH_ITERATIONS STRATA_CRASH_SEED STRATA_TEST_LAYERS STRATA_TEST_VIEWS STRATA_DM_FS STRATA_LOG_LEVEL $(compgen -e | grep '^STRATA_DM_GROUP_TIMEOUT_' | tr '\n' ' ')${DM_VM_PASSENV:-}" \
    STRATA_DM_GROUPS="$groups" \
    "$vm" "$repo" -- bash "$run/dm-lane.sh" --inside "$logs" "$run"
  rc=$?
  set -e
  cp -r "$logs"/. "$out"/ 2>/dev/null || true
  [ "$rc" = 124 ] && echo "dm-lane: the VM hit DM_VM_TIMEOUT" >&2
  [ "$rc" = 125 ] && echo "dm-lane: the VM failed to boot or run (see above)" >&2
  echo "dm-lane: TAP logs in $out"
  exit "$rc"
fi

# ---- inside the VM ---------------------------------------------------------------------------------------
logs=$2
[ "${DM_VM:-}" = 1 ] || { echo "dm-lane --inside: not in the dm VM" >&2; exit 2; }
cd "$3"
export STRATA_TEST_DRIVERS=devmapper
# The guest's /tmp is tmpfs, which on 6.1 has no user.* xattrs (the suites' expected trees use them): the
# tests' temp dirs go on an ext4 filesystem on a sparse file instead (it costs guest RAM only for what is written).
lanetmp=/run/strata-lane
mkdir -p "$lanetmp"
truncate -s 8G /tmp/strata-lane.img
mkfs.ext4 -q -F -E nodiscard /tmp/strata-lane.img
mount -o loop,discard /tmp/strata-lane.img "$lanetmp"
chmod 1777 "$lanetmp"
export TMPDIR=$lanetmp
# Stress sizes for software emulation (see the header); the host runs the defaults.
export STRATA_CRASH_ITERATIONS=${STRATA_CRASH_ITERATIONS:-6}
export STRATA_TEST_LAYERS=${STRATA_TEST_LAYERS:-32}
export STRATA_TEST_VIEWS=${STRATA_TEST_VIEWS:-120}
# A daemon's start (pool checks, thin_ls, resumes) takes 10-15 s here, and twice that with the host's cores shared.
export STRATA_TEST_READY_MS=${STRATA_TEST_READY_MS:-120000}
# The issue's end-to-end is containerd 1.6 on devmapper; 2.x runs on the host lane.
export STRATA_E2E_CONTAINERD=1.6
t0=$(date +%s)

# Each group's time limit in seconds (STRATA_DM_GROUP_TIMEOUT_<group> overrides), so a hung group costs only its
# own limit. Measured on an otherwise idle 2-core host (both streams busy): driver 55 s, hostile 180+
# (to the corpus's million- and 20000-entry cases), quota 76, crash 273,
# conformance lifecycle 94, content 174, walk 261, e2e 113; a second VM on the host doubles these. The limits
# leave room for that; a group never gets more than what is left of the stream's budget (DM_VM_TIMEOUT minus
# boot and setup), so the lane always ends with its summary before the outer guard fires.
declare -A limit=([driver]=180 [hostile]=600 [quota]=240 [crash]=600
  [conformance-lifecycle]=300 [conformance-content]=420 [conformance-walk]=540 [e2e]=300)
deadline=$((t0 + ${STRATA_DM_BUDGET:-1200} - 75)) # boot, setup, timeout's --kill-after, summary

group() { # name, node --test args...
  local name=$1 s rc lim var left
  shift
  case " $groups " in *" $name "* | *" ${name%%-*} "*) ;; *) return 0 ;; esac
  var=STRATA_DM_GROUP_TIMEOUT_${name//-/_}
  lim=${!var:-${limit[$name]}}
  left=$((deadline - $(date +%s)))
  [ "$left" -ge "$lim" ] || lim=$left
  if [ "$left" -lt 10 ]; then
    echo "dm-lane: $name did not run: the lane's budget is spent" | tee "$logs/$name.out"
    printf '%s %s %s\n' "$name" budget 0 >>"$logs/status"
    return 0
  fi
  printf '==> dm-lane: %s starts (+%ss, limit %ss)\n' "$name" "$(($(date +%s) - t0))" "$lim"
  s=$(date +%s)
  set +e
  timeout --kill-after=30 "$lim" node --test --test-concurrency=1 --test-timeout=900000 \
    --test-reporter=spec --test-reporter-destination="$logs/$name.out" \
    --test-reporter=tap --test-reporter-destination="$logs/$name.tap" "$@" </dev/null >>"$logs/$name.out" 2>&1
  rc=$?
  set -e
  [ "$rc" = 124 ] && echo "dm-lane: $name hit its ${lim}s limit" >>"$logs/$name.out"
  printf '\n==> dm-lane: %s (%ss, exit %s)\n%s\n' "$name" "$(($(date +%s) - s))" "$rc" "$(cat "$logs/$name.out")"
  printf '%s %s %s\n' "$name" "$rc" "$(($(date +%s) - s))" >>"$logs/status"
}

# Two streams, one per vCPU: under TCG each dmsetup/mount/mkfs run is CPU-bound emulation and a node --test run
# keeps about one vCPU busy, so two streams nearly halve the lane. The suites share nothing: every daemon root has
# its own pool, loop files and dm names (strata-<hash of root>-*). Cheap groups first in each stream.
: >"$logs/status"
(
  group driver dist/test/devmapper/driver.test.js
  group hostile --test-name-pattern='delete whiteouts' dist/test/devmapper/hostile.test.js
  group quota dist/test/native/quota.test.js dist/test/drivers/quota.test.js dist/test/volumes/dir.test.js
  group crash dist/test/crash/crash.test.js
) &
a=$!
(
  group conformance-lifecycle dist/test/conformance/lifecycle.test.js
  group conformance-content dist/test/conformance/content.test.js
  group conformance-walk dist/test/conformance/walk.test.js
  group e2e dist/test/e2e/containerd.test.js
) &
b=$!
wait "$a" "$b" || true

printf '\n==> dm-lane summary (in the VM: software emulation, times are 10-30x real hardware)\n'
failed=0
while read -r name rc secs; do
  # A group killed by its limit may have no totals in its TAP log.
  totals=$(grep -hE '^# (pass|fail|skipped) ' "$logs/$name.tap" 2>/dev/null | tail -n 3 | tr '\n' ' ' || true)
  printf '%-22s %s  (%ss)  %s\n' "$name" "$([ "$rc" = 0 ] && echo PASS || echo "FAIL (exit $rc)")" "$secs" "$totals"
  [ "$rc" = 0 ] || failed=1
done <"$logs/status"
# A skip inside the VM means a backend the lane exists for did not run: in CI that is a failure.
skips=$(grep -hE '# SKIP' "$logs"/*.tap 2>/dev/null | grep -vE 'does not match pattern|only on the host|containerd 2|is not in STRATA_TEST_DRIVERS' || true)
if [ -n "$skips" ]; then
  echo "skipped inside the VM:"
  echo "$skips" | sed -e 's/^/  /' | head -n 40
  [ "${CI:-}" = true ] && failed=1
fi
echo "dm-lane total: $(($(date +%s) - t0))s"
sync
exit "$failed"
