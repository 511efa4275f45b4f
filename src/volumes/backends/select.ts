/**
 * Which backend serves volumes, from the daemon's driver: the same storage technology as its snapshots (DESIGN.md),
 * a btrfs subvolume on btrfs, a ZFS dataset on zfs, a plain directory (with project quota where there is one) on
 * overlay, native and devmapper roots.
 */
import * as path from 'node:path';
import type { DriverConfig, DriverName } from '../../../drivers/driver';
import type { VolumeBackend } from './backend';
import { BtrfsVolumeBackend } from './btrfs';
import { DirVolumeBackend } from './dir';
import { detectDirQuota } from './quota';
import { ZfsVolumeBackend } from './zfs';

export function volumesRootOf(root: string): string {
  return path.resolve(root, 'volumes');
}

export function backendForDriver(driver: DriverName, root: string, driverConfig: DriverConfig = {}): VolumeBackend {
  const volumesRoot = volumesRootOf(root);
  switch (driver) {
    case 'btrfs':
      return new BtrfsVolumeBackend(volumesRoot);
    case 'zfs':
      return new ZfsVolumeBackend(volumesRoot, typeof driverConfig.dataset === 'string' ? driverConfig.dataset : '');
    default:
      return new DirVolumeBackend(volumesRoot, detectDirQuota);
  }
}
