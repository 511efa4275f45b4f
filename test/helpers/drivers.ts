/**
 * The drivers the shared suites (conformance, crash, bad input) run against. Each entry knows how to get its
 * backend (nothing, a loopback btrfs, a ZFS pool...) and says why it must skip when it cannot; adding a driver
 * or a driver-on-filesystem combination is one entry in DRIVERS.
 *
 * STRATA_TEST_DRIVERS=overlay,native limits a run to some labels (handy on a shared machine).
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DriverTable } from './daemon';

export interface DriverTarget {
  /** Where the daemon's root must live (on the backend's filesystem); a temp dir when undefined. */
  root?: string;
  /** The config file's `[driver.<name>]` table. */
  config: DriverTable;
  teardown(): Promise<void>;
}

export interface DriverEntry {
  /** Test label: the driver, or 'driver on fs' for a combination. */
  label: string;
  driver: 'overlay' | 'native' | 'btrfs' | 'zfs' | 'devmapper';
  /** Storage is `<root>/snapshots/<id>/`, one entry per snapshot the metadata knows (orphan checks rely on it). */
  snapshotDirs: boolean;
  /**
   * How tests read a committed snapshot's tree: through a View (default, what containerd does), or through an
   * Active child where the backend cannot list xattrs on read-only mounts.
   */
  readCommittedVia?: 'view' | 'active';
  /** Brings the backend up, or returns why it cannot be done here. */
  setup(): Promise<DriverTarget | { skip: string }>;
}

// --- test/helpers/backends.ts is written by the btrfs/zfs engineer; it is loaded at run time so these suites run
// (and skip those entries with the reason) before it exists or when it changes shape.
interface Cleanup {
  cleanup(): Promise<void>;
}
interface BackendsModule {
  backendMissing?(kind: 'btrfs' | 'zfs'): Promise<string | undefined>;
  createBtrfs?(opts?: { sizeMiB?: number; quota?: boolean }): Promise<Cleanup & { mountpoint: string }>;
  createZfsPool?(opts?: { sizeMiB?: number }): Promise<Cleanup & { pool: string; dataset: string }>;
  createThinPool?(opts?: { sizeMiB?: number }): Promise<Cleanup & { driverConfig: DriverTable }>;
}

function loadBackends(): BackendsModule | string {
  const file = path.join(__dirname, 'backends.js');
  if (!fs.existsSync(file)) return 'test/helpers/backends.ts (loopback btrfs, ZFS pools) is not there yet';
  return require(file) as BackendsModule;
}

/** The compiled driver module exists (drivers land one by one; an unwritten one skips instead of failing). */
function driverBuilt(name: string): string | undefined {
  const file = path.resolve(__dirname, '..', '..', 'drivers', name, 'index.js');
  return fs.existsSync(file) ? undefined : `driver ${name} is not built (${file} missing)`;
}

const noBackend = (): Promise<DriverTarget> => Promise.resolve({ config: {}, teardown: () => Promise.resolve() });

async function onBtrfs(): Promise<DriverTarget | { skip: string }> {
  const b = loadBackends();
  if (typeof b === 'string') return { skip: b };
  if (!b.createBtrfs) return { skip: 'test/helpers/backends.ts has no createBtrfs' };
  const missing = await b.backendMissing?.('btrfs');
  if (missing) return { skip: missing };
  const fsb = await b.createBtrfs({ sizeMiB: 1024 });
  const root = path.join(fsb.mountpoint, 'root');
  return { root, config: {}, teardown: () => fsb.cleanup() };
}

function kernelHasThin(): Promise<boolean> {
  return new Promise((resolve) =>
    execFile('dmsetup', ['targets'], (err, stdout) => resolve(!err && /thin-pool/.test(stdout) && fs.existsSync('/dev/mapper/control'))),
  );
}

export const DRIVERS: DriverEntry[] = [
  { label: 'overlay', driver: 'overlay', snapshotDirs: true, setup: noBackend },
  { label: 'native', driver: 'native', snapshotDirs: true, setup: noBackend },
  {
    // native's FICLONE path only runs on a reflink filesystem.
    label: 'native on btrfs',
    driver: 'native',
    snapshotDirs: true,
    setup: onBtrfs,
  },
  {
    label: 'btrfs',
    driver: 'btrfs',
    snapshotDirs: false,
    async setup() {
      const why = driverBuilt('btrfs');
      return why ? { skip: why } : onBtrfs();
    },
  },
  {
    label: 'zfs',
    driver: 'zfs',
    snapshotDirs: false,
    // zfs-fuse fails listxattr on read-only datasets with ENOSYS, after which FUSE refuses listxattr on the
    // whole mount: reading a view's xattrs is impossible there, so content checks read through an active child.
    readCommittedVia: 'active',
    async setup() {
      const why = driverBuilt('zfs');
      if (why) return { skip: why };
      const b = loadBackends();
      if (typeof b === 'string') return { skip: b };
      if (!b.createZfsPool) return { skip: 'test/helpers/backends.ts has no createZfsPool' };
      const missing = await b.backendMissing?.('zfs');
      if (missing) return { skip: missing };
      const pool = await b.createZfsPool({ sizeMiB: 512 });
      return { config: { dataset: pool.dataset }, teardown: () => pool.cleanup() };
    },
  },
  {
    // Only inside the dm VM lane (scripts/dm-lane.sh sets DM_VM=1): the driver makes its own loopback pool.
    label: 'devmapper',
    driver: 'devmapper',
    snapshotDirs: false,
    async setup() {
      const why = driverBuilt('devmapper');
      if (why) return { skip: why };
      if (process.env.DM_VM !== '1') return { skip: 'devicemapper runs in the dm VM lane (scripts/dm-lane.sh): this kernel has no dm-thin' };
      if (!(await kernelHasThin())) return { skip: 'dm-thin is not available in this VM' };
      const { ownedRoot } = require(path.join(__dirname, '..', 'devmapper', 'pool.js')) as typeof import('../devmapper/pool');
      const r = ownedRoot();
      return { root: r.root, config: r.config, teardown: () => r.teardown() };
    },
  },
];

/** The entries this run covers (all, or those named in STRATA_TEST_DRIVERS). */
export function selectedDrivers(filter: (e: DriverEntry) => boolean = () => true): DriverEntry[] {
  const only = (process.env.STRATA_TEST_DRIVERS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return DRIVERS.filter((e) => filter(e) && (only.length === 0 || only.includes(e.label) || only.includes(e.driver)));
}
