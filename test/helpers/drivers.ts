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
import { mountsBelow, type DriverTable } from './daemon';

/**
 * Size of a loopback btrfs / ZFS pool (sparse images): the suites' default, or STRATA_BACKEND_MIB for callers
 * that fill more (bench/ops puts 100k files in one snapshot).
 */
function backendMiB(def: number): number {
  const n = Number(process.env.STRATA_BACKEND_MIB);
  return Number.isInteger(n) && n > 0 ? n : def;
}

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
  /**
   * Set when the backend's own space accounting cannot show fresh writes, with what was measured: the Usage
   * test still runs and prints its result, as TODO for this backend only.
   */
  usageAccountingTodo?: string;
  /** Brings the backend up, or returns why it cannot be done here. */
  setup(): Promise<DriverTarget | { skip: string }>;
  /**
   * What the driver holds on disk, by snapshot id, for orphan checks that look deeper than `<root>/snapshots/`
   * (subvolumes, datasets). Defaults to storageDirs().
   */
  storage?(root: string, config: DriverTable): Promise<StorageScan>;
}

/** Storage found on disk, as the orphan checks need it. */
export interface StorageScan {
  /** Snapshot ids that hold storage (a directory, a mount, a subvolume, a dataset). */
  ids: Set<number>;
  /** Storage that names no snapshot id at all (a subvolume or dataset off the driver's layout): always a leak. */
  strays: string[];
  /**
   * Ids whose storage the driver keeps on purpose after their snapshot is gone, with the ids keeping it alive
   * (zfs parks a removed layer's dataset while clones of its @committed live). Legitimate only while one of
   * those is itself known or legitimately kept.
   */
  keptBy: Map<number, number[]>;
  /** What each id's storage is, for failure messages. */
  describe: Map<number, string[]>;
}

const ID_RE = /^[1-9][0-9]*$/;

function emptyScan(): StorageScan {
  return { ids: new Set(), strays: [], keptBy: new Map(), describe: new Map() };
}

function note(scan: StorageScan, id: number, what: string): void {
  scan.ids.add(id);
  const d = scan.describe.get(id) ?? [];
  d.push(what);
  scan.describe.set(id, d);
}

/** `<root>/snapshots/<id>` directories and mounts below them: every driver keeps its per-id state there. */
export function storageDirs(root: string): StorageScan {
  const scan = emptyScan();
  const dir = path.join(root, 'snapshots');
  const names = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
  for (const n of names) {
    if (ID_RE.test(n)) note(scan, Number(n), `dir ${n}`);
    else scan.strays.push(path.join(dir, n));
  }
  for (const mp of mountsBelow(dir)) {
    const first = path.relative(dir, mp).split('/')[0]!;
    if (ID_RE.test(first)) note(scan, Number(first), `mount ${mp}`);
    else scan.strays.push(`mount ${mp}`);
  }
  return scan;
}

function output(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(file, args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${file} ${args.join(' ')}: ${stderr.trim() || err.message}`)) : resolve(stdout),
    ),
  );
}

/**
 * Directories plus every subvolume of the filesystem (the test's loopback btrfs holds nothing else): each must be
 * `<root>/snapshots/<id>/fs`. `btrfs subvolume list` prints paths from the filesystem's top level.
 */
async function btrfsStorage(root: string): Promise<StorageScan> {
  const scan = storageDirs(root);
  const mountpoint = path.dirname(root);
  const rel = path.relative(mountpoint, path.join(root, 'snapshots'));
  for (const line of (await output('btrfs', ['subvolume', 'list', mountpoint])).split('\n')) {
    const m = / path (.*)$/.exec(line);
    if (!m) continue;
    const p = m[1]!;
    // Volumes (`<root>/volumes/<id>`) are the volume store's, checked by its own tests.
    if (p.startsWith(path.relative(mountpoint, path.join(root, 'volumes')) + '/')) continue;
    const parts = path.relative(rel, p).split('/');
    if (parts.length === 2 && ID_RE.test(parts[0]!) && parts[1] === 'fs') note(scan, Number(parts[0]), `subvolume ${p}`);
    else scan.strays.push(`subvolume ${p}`);
  }
  return scan;
}

/**
 * Directories plus every dataset and snapshot below the configured dataset: each must be `<dataset>/<id>` or
 * `<dataset>/<id>@committed`. A dataset marked strata:removed=yes is parked by the driver until the clones of its
 * @committed are gone: it is kept by those clones.
 */
async function zfsStorage(root: string, config: DriverTable): Promise<StorageScan> {
  const scan = storageDirs(root);
  const parent = String(config['dataset']);
  const out = await output('zfs', ['list', '-H', '-t', 'all', '-o', 'name,origin,strata:removed', '-r', parent]);
  const idOf = (name: string): number | undefined => {
    const rest = name.startsWith(parent + '/') ? name.slice(parent.length + 1) : '';
    return ID_RE.test(rest) ? Number(rest) : undefined;
  };
  const parked = new Set<number>();
  const clonesOf = new Map<number, number[]>();
  for (const line of out.split('\n')) {
    const [name, origin, removed] = line.split('\t');
    // `<dataset>/volumes` and below are the volume store's (src/volumes), checked by its own tests.
    if (!name || name === parent || name === `${parent}/volumes` || name.startsWith(`${parent}/volumes/`) || name.startsWith(`${parent}/volumes@`)) continue;
    const at = name.indexOf('@');
    if (at >= 0) {
      const id = idOf(name.slice(0, at));
      if (id === undefined || name.slice(at + 1) !== 'committed') scan.strays.push(`zfs snapshot ${name}`);
      else note(scan, id, `zfs snapshot ${name}`);
      continue;
    }
    const id = idOf(name);
    if (id === undefined) {
      scan.strays.push(`dataset ${name}`);
      continue;
    }
    note(scan, id, `dataset ${name}${removed === 'yes' ? ' (parked)' : ''}`);
    if (removed === 'yes') parked.add(id);
    const originId = origin && origin !== '-' ? idOf(origin.split('@')[0]!) : undefined;
    if (originId !== undefined) clonesOf.set(originId, [...(clonesOf.get(originId) ?? []), id]);
  }
  for (const id of parked) {
    const clones = clonesOf.get(id);
    if (clones?.length) scan.keptBy.set(id, clones);
  }
  return scan;
}

/**
 * devmapper keeps no per-id directories: its storage is the rows of `<root>/devmapper/devices.db` (snapshot id →
 * thin id), the dm devices named `strata-<hash of root>-<id>` (active ones), and the thin ids in the pool. A dm
 * device of this root that names no id, and a thin id in the pool that no row owns, are leaks. Loaded at run time:
 * the devmapper modules only matter inside the dm VM lane.
 */
async function devmapperStorage(root: string, config: DriverTable): Promise<StorageScan> {
  const scan = storageDirs(root);
  /* eslint-disable @typescript-eslint/no-require-imports */
  const Database = require('better-sqlite3') as typeof import('better-sqlite3');
  const drv = path.resolve(__dirname, '..', '..', 'drivers', 'devmapper');
  const { namePrefix } = require(path.join(drv, 'driver.js')) as typeof import('../../drivers/devmapper/driver');
  const { listDmNames, Pool } = require(path.join(drv, 'pool.js')) as typeof import('../../drivers/devmapper/pool');
  const { scanPool } = require(path.join(drv, 'scan.js')) as typeof import('../../drivers/devmapper/scan');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const rowOfThin = new Map<number, number>();
  const dbFile = path.join(root, 'devmapper', 'devices.db');
  if (fs.existsSync(dbFile)) {
    const db = new Database(dbFile, { readonly: true, fileMustExist: true });
    try {
      const rows = db.prepare('SELECT snap_id, thin_id, state FROM devices').all() as Array<{ snap_id: number; thin_id: number; state: string }>;
      for (const r of rows) {
        note(scan, r.snap_id, `devices.db row (thin id ${r.thin_id}, ${r.state})`);
        rowOfThin.set(r.thin_id, r.snap_id);
      }
    } finally {
      db.close();
    }
  }
  const prefix = namePrefix(root);
  const poolName = typeof config['pool'] === 'string' && config['pool'] ? config['pool'] : `${prefix}pool`;
  for (const n of await listDmNames()) {
    if (!n.startsWith(prefix) || n === poolName) continue;
    const rest = n.slice(prefix.length);
    if (ID_RE.test(rest)) note(scan, Number(rest), `dm device ${n}`);
    else scan.strays.push(`dm device ${n}`);
  }
  const pool = new Pool(poolName);
  if (await pool.exists()) {
    const inPool = await scanPool(pool);
    for (const thin of inPool) {
      const id = rowOfThin.get(thin);
      if (id !== undefined) note(scan, id, `thin id ${thin} in ${poolName}`);
      // An external pool may hold other users' thin ids; one strata owns holds only strata's.
      else if (poolName === `${prefix}pool`) scan.strays.push(`thin id ${thin} in ${poolName} (no devices.db row)`);
    }
    // After Cleanup every row's device exists: a row left pointing at nothing is metadata a crash corrupted.
    for (const [thin, id] of rowOfThin) if (!inPool.has(thin)) scan.strays.push(`devices.db row of id ${id}: thin id ${thin} is not in ${poolName}`);
  }
  return scan;
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
  const fsb = await b.createBtrfs({ sizeMiB: backendMiB(1024) });
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
    // A subvolume at <root>/snapshots/<id>/fs (plus the usage file beside it): one directory per snapshot.
    snapshotDirs: true,
    storage: (root) => btrfsStorage(root),
    async setup() {
      const why = driverBuilt('btrfs');
      return why ? { skip: why } : onBtrfs();
    },
  },
  {
    label: 'zfs',
    driver: 'zfs',
    // Datasets are mounted at <root>/snapshots/<id>/fs; a parked dataset (see storage) has no directory left.
    snapshotDirs: true,
    storage: zfsStorage,
    // zfs-fuse fails listxattr on read-only datasets with ENOSYS, after which FUSE refuses listxattr on the
    // whole mount: reading a view's xattrs is impossible there, so content checks read through an active child.
    readCommittedVia: 'active',
    // Measured on zfs-fuse 0.7 (Debian 12): 2 MiB of random data written and synced shows as 1.3 MiB in both
    // st_blocks and `used`, steady for 10 s+; 1 MiB written into a clone shows 0. OpenZFS counts these exactly.
    usageAccountingTodo: 'zfs-fuse under-counts fresh writes (2 MiB shows as 1.3 MiB; a clone\'s 1 MiB as 0)',
    async setup() {
      const why = driverBuilt('zfs');
      if (why) return { skip: why };
      const b = loadBackends();
      if (typeof b === 'string') return { skip: b };
      if (!b.createZfsPool) return { skip: 'test/helpers/backends.ts has no createZfsPool' };
      const missing = await b.backendMissing?.('zfs');
      if (missing) return { skip: missing };
      const pool = await b.createZfsPool({ sizeMiB: backendMiB(512) });
      return { config: { dataset: pool.dataset }, teardown: () => pool.cleanup() };
    },
  },
  {
    // Only inside the dm VM lane (scripts/dm-lane.sh sets DM_VM=1): the driver makes its own loopback pool.
    label: 'devmapper',
    driver: 'devmapper',
    snapshotDirs: false,
    // devices.db rows, this root's dm devices and the pool's thin ids, by snapshot id (see devmapperStorage).
    storage: devmapperStorage,
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
