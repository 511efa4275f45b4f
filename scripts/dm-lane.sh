#!/usr/bin/env bash
# The devicemapper lane: this kernel has no device-mapper, so the whole devmapper suite runs inside ONE VM
# (../shared/dm-vm, Debian 6.1 kernel with dm-thin, XFS quota and quota_v2). Compile on the host first
# (scripts/test.sh does): the VM runs plain compiled JS and sees the checkout at the same path.
#
# Inside the VM, in this order (each a `node --test` run; a failing group does not stop the others):
#   driver      dist/test/devmapper/driver.test.js                  device-level driver tests
#   conformance dist/test/conformance/*.test.js                     the shared suite, devmapper only
#   crash       dist/test/crash/crash.test.js                       kill -9 between dm steps, restart, Cleanup
#   hostile     dist/test/devmapper/hostile.test.js                 the unpacker's hostile corpus on a thin device
#   e2e         dist/test/e2e/containerd.test.js                    containerd 1.6 on devmapper snapshots
#   quota       native/quota, drivers/quota, volumes/dir            project quotas, which the host kernel lacks
#
# Usage: scripts/dm-lane.sh [OUT_DIR]       (as root; OUT_DIR receives the TAP logs)
# Environment:
#   DM_VM_TIMEOUT (default 1200: the lane's 20-minute budget), DM_VM_MEM (3072), STRATA_DM_GROUPS
#   ("driver conformance crash hostile e2e quota"), STRATA_CRASH_ITERATIONS (default 6 in the VM),
#   STRATA_DM_FS (ext4|xfs for the shared suites), STRATA_DM_VM (path of dm-vm-run.sh).
# In CI (CI=true) a missing VM prerequisite is a failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
groups=${STRATA_DM_GROUPS:-driver conformance crash hostile e2e quota}

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
  # The VM writes only below the checkout: its TAP logs land in dist/ (never committed) and are copied out.
  logs=dist/dm-lane
  rm -rf "$logs"
  mkdir -p "$logs"
  set +e
  DM_VM_TIMEOUT=${DM_VM_TIMEOUT:-1200} DM_VM_MEM=${DM_VM_MEM:-3072} \
    DM_VM_EXTRA_MODULES="quota_v2 quota_tree ${DM_VM_EXTRA_MODULES:-}" \
    DM_VM_PASSENV="STRATA_DM_GROUPS STRATA_CRASH_ITERATIONS STRATA_CRASH_SEED STRATA_DM_FS STRATA_LOG_LEVEL ${DM_VM_PASSENV:-}" \
    STRATA_DM_GROUPS="$groups" \
    "$vm" "$repo" -- bash "$repo/scripts/dm-lane.sh" --inside "$repo/$logs"
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
export STRATA_CRASH_ITERATIONS=${STRATA_CRASH_ITERATIONS:-6}
t0=$(date +%s)
declare -A status secs
ran=()

group() { # name, node --test args...
  local name=$1 s rc
  shift
  case " $groups " in *" $name "*) ;; *) return 0 ;; esac
  printf '\n==> dm-lane: %s (+%ss)\n' "$name" "$(($(date +%s) - t0))"
  ran+=("$name")
  s=$(date +%s)
  set +e
  node --test --test-concurrency=1 --test-timeout=900000 \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$logs/$name.tap" "$@"
  rc=$?
  set -e
  status[$name]=$rc
  secs[$name]=$(($(date +%s) - s))
}

group driver dist/test/devmapper/driver.test.js
group conformance dist/test/conformance/*.test.js
group crash dist/test/crash/crash.test.js
group hostile --test-name-pattern='delete whiteouts' dist/test/devmapper/hostile.test.js
group e2e dist/test/e2e/containerd.test.js
group quota dist/test/native/quota.test.js dist/test/drivers/quota.test.js dist/test/volumes/dir.test.js

printf '\n==> dm-lane summary (in the VM: software emulation, times are 10-30x real hardware)\n'
failed=0
for name in "${ran[@]}"; do
  rc=${status[$name]}
  totals=$(grep -hE '^# (pass|fail|skipped) ' "$logs/$name.tap" 2>/dev/null | tail -n 3 | tr '\n' ' ')
  printf '%-12s %s  (%ss)  %s\n' "$name" "$([ "$rc" = 0 ] && echo PASS || echo "FAIL (exit $rc)")" "${secs[$name]}" "$totals"
  [ "$rc" = 0 ] || failed=1
done
# A skip inside the VM means a backend the lane exists for did not run: in CI that is a failure.
skips=$(grep -hE '# SKIP' "$logs"/*.tap 2>/dev/null | grep -vE 'does not match pattern|only on the host|containerd 2' || true)
if [ -n "$skips" ]; then
  echo "skipped inside the VM:"
  echo "$skips" | sed -e 's/^/  /' | head -n 40
  [ "${CI:-}" = true ] && failed=1
fi
echo "dm-lane total: $(($(date +%s) - t0))s"
sync
exit "$failed"
