#!/usr/bin/env bash
# Installs the Debian packages strata's tests, benchmarks and CI need (root). Idempotent and quick when
# everything is present. Each package is there for a named reason; see the README's "Testing" section.
set -euo pipefail
PKGS=(
  containerd runc            # containerd 1.6 end-to-end tests
  docker.io                  # dockerd end-to-end tests of the volume plugin
  btrfs-progs                # loopback btrfs (driver tests, FICLONE)
  zfs-fuse                   # ZFS pool on a file
  xfsprogs e2fsprogs         # project-quota tests on loopback XFS/ext4
  attr                       # getfattr/setfattr in tests
  zstd                       # zstd layers and the tar --zstd peer
  libisal-dev libzstd-dev    # ISA-L and libzstd: native/'s gzip and zstd decoders (scripts/build-native.sh installs them too)
  util-linux mount           # losetup, mount
  qemu-system-x86 busybox-static kmod dmsetup thin-provisioning-tools  # devicemapper VM lane
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
