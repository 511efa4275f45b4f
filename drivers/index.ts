/**
 * The driver registry: each driver is a folder under drivers/ whose index.ts exports `probe` and `create`.
 * Drivers load lazily so a host without btrfs-progs or zfs never loads their code.
 */
import type { Driver, DriverName, DriverOptions, ProbeResult } from './driver';

export interface DriverModule {
  /** Can this driver work on this kernel and on the filesystem holding root? */
  probe(opts: DriverOptions): Promise<ProbeResult>;
  create(opts: DriverOptions): Driver;
}

export const DRIVER_NAMES: readonly DriverName[] = ['overlay', 'native', 'btrfs', 'zfs', 'devmapper'];

export function isDriverName(s: string): s is DriverName {
  return (DRIVER_NAMES as readonly string[]).includes(s);
}

export function loadDriverModule(name: DriverName): DriverModule {
  switch (name) {
    case 'overlay':
      return require('./overlay') as DriverModule;
    case 'native':
      return require('./native') as DriverModule;
    case 'btrfs':
      return require('./btrfs') as DriverModule;
    case 'zfs':
      return require('./zfs') as DriverModule;
    case 'devmapper':
      return require('./devmapper') as DriverModule;
  }
}

/** The best driver when none is configured: overlay where it works, else native (DESIGN.md). */
export async function chooseDefaultDriver(opts: DriverOptions): Promise<{ name: DriverName; why: string }> {
  const overlay = await loadDriverModule('overlay').probe(opts);
  if (overlay.ok) return { name: 'overlay', why: 'overlayfs works on this kernel and root filesystem' };
  return { name: 'native', why: `overlay unavailable: ${overlay.reason ?? 'probe failed'}` };
}
