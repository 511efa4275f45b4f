/**
 * The devicemapper driver: one dm-thin device per snapshot, each holding a whole filesystem (ext4 or XFS).
 *
 * - Prepare/View on a parent: `create_snap` of the parent's thin id (the parent suspended around it when it is
 *   active, as dm-thin requires), activated read-write (active) or read-only (view). Without a parent: a new thin
 *   device and mkfs. A max-size larger than the parent's becomes a larger device and a grown filesystem.
 * - Commit: the layer is measured and its device deactivated; nothing activates it read-write again.
 * - Remove (in the background, from the core's Reclaimer): deactivate, optionally discard, `delete` the thin id.
 * - Mounts: `{type: ext4|xfs, source: /dev/mapper/<name>}` for containerd to mount. Active and view snapshots keep
 *   their device active; committed layers are active only while openTree holds them, so hundreds of layers do not
 *   hold hundreds of dm devices.
 *
 * Device names are `strata-<hash of root>-<snapshot id>`, so two roots can share a pool and a listing of dm
 * devices finds strata's own. The snapshot → thin id map is in state.ts. Every dm state change runs under one
 * mutex: the reclaimer removes devices while Prepare snapshots others, and a suspend must not meet a deactivate.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ApplyTarget, CreateOptions, Driver, DriverUsage, OpenDir, SnapshotRef, WhiteoutForm } from '../driver';
import { errnoCode, failedPrecondition, invalidArgument, isStrataError, notFound, StrataError, toStrataError } from '../../src/core/errors';
import { createLogger, type Logger } from '../../src/core/log';
import { unmountAll } from '../../src/core/mount';
import { Mutex } from '../../src/core/mutex';
import type { Mount } from '../../src/core/types';
import { MS, native } from '../../native';
import { dmsetup, isDmError, run } from './exec';
import { fsMountOptions, growFs, mkfs, tidyNewFs, usedInodes, type FsType } from './fs';
import { ensureOwnedPool, listDmNames, Pool, SECTOR, type OwnedPoolSpec } from './pool';
import { DeviceTable, type DeviceRow } from './state';
import { scanPool } from './scan';

export interface DevmapperSettings {
  root: string;
  /** An existing pool's dm name, or undefined for a pool strata makes on loopback files under root. */
  pool: string | undefined;
  owned: Omit<OwnedPoolSpec, 'dir'>;
  baseSize: number;
  fs: FsType;
  discardOnRemove: boolean;
}

export function namePrefix(root: string): string {
  return `strata-${createHash('sha256').update(root).digest('hex').slice(0, 8)}-`;
}

const noRelease = (): Promise<void> => Promise.resolve();

export class DevmapperDriver implements Driver {
  readonly name = 'devmapper' as const;
  readonly whiteouts: WhiteoutForm = 'delete';
  readonly canRebase = false;

  readonly prefix: string;
  readonly pool: Pool;
  private readonly dir: string;
  private readonly tmp: string;
  private table: DeviceTable | undefined;
  private readonly mutex = new Mutex();
  /** Names of our dm devices that are active (kept in step with every create/remove this process makes). */
  private readonly active = new Set<string>();
  /** Committed devices activated for openTree, and by how many holders. */
  private readonly holds = new Map<number, number>();
  /** Rows whose thin id the pool does not have (found at start): reported in status(). */
  private missing: number[] = [];
  private readonly log: Logger;

  constructor(private readonly s: DevmapperSettings) {
    this.prefix = namePrefix(s.root);
    this.pool = new Pool(s.pool ?? `${this.prefix}pool`);
    this.dir = path.join(s.root, 'devmapper');
    this.tmp = path.join(s.root, 'tmp', 'devmapper');
    this.log = createLogger(undefined, { driver: 'devmapper' });
  }

  devName(id: number): string {
    return `${this.prefix}${id}`;
  }
  devPath(id: number): string {
    return `/dev/mapper/${this.devName(id)}`;
  }

  private get t(): DeviceTable {
    if (!this.table) throw failedPrecondition('devmapper driver: not initialised');
    return this.table;
  }

  async init(): Promise<void> {
    fs.mkdirSync(this.s.root, { recursive: true, mode: 0o711 });
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    await this.unmountStale();
    this.table = new DeviceTable(path.join(this.dir, 'devices.db'));
    try {
      if (this.s.pool === undefined) await ensureOwnedPool(this.pool, { ...this.s.owned, dir: this.dir });
      else if (!(await this.pool.exists())) throw failedPrecondition(`devmapper driver: thin pool ${this.s.pool} does not exist (dmsetup ls)`);
      await this.pool.open();
      for (const n of await listDmNames()) if (n.startsWith(this.prefix) && n !== this.pool.name) this.active.add(n);
      await this.resumeSuspended();
      await this.reconcile();
      await this.deactivateIdle();
    } catch (e) {
      throw toStrataError(e, 'devmapper driver: starting');
    }
  }

  /**
   * A daemon killed between suspending an origin and resuming it leaves the origin suspended, and every I/O on
   * it would hang: resume whatever of ours is suspended (one dmsetup run lists them all).
   */
  private async resumeSuspended(): Promise<void> {
    if (this.active.size === 0) return;
    const out = await dmsetup(['info', '-c', '--noheadings', '--separator', ' ', '-o', 'name,suspended']);
    for (const line of out.split('\n')) {
      const [name, state] = line.trim().split(' ');
      if (name && this.active.has(name) && state === 'Suspended') {
        this.log.warn('resuming a device a crash left suspended', { device: name });
        await dmsetup(['resume', name]);
      }
    }
  }

  /** Mounts a killed daemon left under tmp (an apply in progress) would keep their devices busy forever. */
  private async unmountStale(): Promise<void> {
    if (!fs.existsSync(this.tmp)) return;
    for (const name of fs.readdirSync(this.tmp)) {
      const dir = path.join(this.tmp, name);
      await unmountAll(dir);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  /**
   * Compares the pool's thin ids with the rows. Rows without a device (the pool was recreated or repaired) are
   * reported; thin ids without a row in a pool strata owns cannot be strata's own steps (rows come first), but a
   * pool file reused across roots could hold them, so they are deleted there. A shared pool's other ids belong
   * to someone else and are left alone.
   */
  private async reconcile(): Promise<void> {
    let ids: Set<number>;
    try {
      ids = await scanPool(this.pool);
    } catch (e) {
      this.log.warn('cannot list the thin pool devices; skipping the consistency check', { err: e as Error });
      return;
    }
    const rows = this.t.all();
    this.missing = rows.filter((r) => r.state !== 'creating' && !ids.has(r.thinId)).map((r) => r.snapId);
    if (this.missing.length > 0) {
      this.log.error('snapshots whose thin device is missing from the pool', { pool: this.pool.name, snapshots: this.missing });
    }
    if (this.s.pool !== undefined) return;
    const known = new Set(rows.map((r) => r.thinId));
    for (const id of ids) {
      if (known.has(id)) continue;
      this.log.warn('deleting a thin device no snapshot owns', { pool: this.pool.name, thinId: id });
      await this.pool.message(`delete ${id}`).catch((e: unknown) => this.log.warn('cannot delete thin device', { thinId: id, err: e as Error }));
    }
  }

  // --- activation --------------------------------------------------------------------------------------------

  private async activate(row: DeviceRow, readonly: boolean): Promise<string> {
    const name = this.devName(row.snapId);
    const dev = this.devPath(row.snapId);
    if (this.active.has(name) && fs.existsSync(dev)) return dev;
    const table = `0 ${Math.floor(row.sizeBytes / SECTOR)} thin ${this.pool.devPath} ${row.thinId}`;
    try {
      await dmsetup(['create', name, ...(readonly ? ['--readonly'] : []), '--table', table]);
    } catch (e) {
      if (isStrataError(e, 'AlreadyExists')) {
        // Active already (another process, or our set missed it): keep it as it is.
      } else if (isDmError(e, /No data available/)) {
        throw failedPrecondition(`devmapper driver: snapshot ${row.snapId}'s thin device ${row.thinId} is missing from pool ${this.pool.name}`);
      } else {
        throw e;
      }
    }
    this.active.add(name);
    // Without udev libdevmapper makes the node itself; make sure it is there before anyone mounts it.
    if (!fs.existsSync(dev)) await dmsetup(['mknodes', name]);
    return dev;
  }

  /** Deactivates; false when the device is open (mounted): it stays active and a later pass retries. */
  private async deactivate(id: number): Promise<boolean> {
    const name = this.devName(id);
    try {
      await dmsetup(['remove', name]);
    } catch (e) {
      if (isStrataError(e, 'NotFound')) {
        this.active.delete(name);
        return true;
      }
      if (isStrataError(e, 'Unavailable')) return false;
      throw e;
    }
    this.active.delete(name);
    return true;
  }

  private async isActive(id: number): Promise<boolean> {
    try {
      await dmsetup(['info', '-c', '--noheadings', '-o', 'name', this.devName(id)]);
      return true;
    } catch (e) {
      if (isStrataError(e, 'NotFound')) return false;
      throw e;
    }
  }

  /** Committed layers nobody holds should not keep a dm device (one that was busy at commit is retried here). */
  private async deactivateIdle(): Promise<void> {
    for (const name of [...this.active]) {
      const id = Number(name.slice(this.prefix.length));
      const row = this.t.get(id);
      if (row && row.state !== 'committed') continue;
      if ((this.holds.get(id) ?? 0) > 0) continue;
      await this.deactivate(id).catch(() => false);
    }
  }

  private async thinMapped(id: number): Promise<number> {
    const f = (await dmsetup(['status', this.devName(id)])).trim().split(/\s+/);
    if (f[2] !== 'thin') throw failedPrecondition(`devmapper driver: ${this.devName(id)} is not a thin device`);
    if (f[3] === 'Fail') throw failedPrecondition(`devmapper driver: thin device ${this.devName(id)} has failed (pool ${this.pool.name})`);
    return Number(f[3] ?? 0) * SECTOR;
  }

  // --- the contract ------------------------------------------------------------------------------------------

  async create(snap: SnapshotRef, opts: CreateOptions): Promise<void> {
    await this.mutex.run(async () => {
      const readonly = snap.kind === 'view';
      const parentId = snap.parents[0];
      const parent = parentId === undefined ? undefined : this.t.get(parentId);
      if (parentId !== undefined && (!parent || parent.state !== 'committed')) {
        throw failedPrecondition(`devmapper driver: parent snapshot ${parentId} has no committed thin device`);
      }
      const inherited = parent?.sizeBytes ?? this.s.baseSize;
      let size = inherited;
      if (!readonly && opts.sizeLimit !== undefined && opts.sizeLimit > 0) {
        // Whole data blocks: the filesystem is sized to the device.
        size = Math.ceil(opts.sizeLimit / this.pool.blockBytes) * this.pool.blockBytes;
        if (parent && size < parent.sizeBytes) {
          throw invalidArgument(
            `devmapper driver: max-size ${opts.sizeLimit} is smaller than the parent layer's ${parent.sizeBytes}-byte filesystem; thin snapshots can grow a filesystem, not shrink it (lower base_size instead)`,
          );
        }
      }
      // mkfs writes megabytes: a new filesystem always gets a fresh look at the pool.
      await this.pool.assertWritable(parent === undefined);
      const row = this.t.insert({
        snapId: snap.id,
        sizeBytes: size,
        state: 'creating',
        parentId: parent?.snapId ?? null,
        baseMapped: 0,
        baseInodes: 0,
      });
      try {
        if (parent) await this.snapshotOf(row, parent);
        else await this.newThin(row);
        // A view with no parent is an empty filesystem too: made read-write, then activated read-only.
        let dev = await this.activate(row, readonly && parent !== undefined);
        if (!parent) {
          await mkfs(this.s.fs, dev);
          await tidyNewFs(this.s.fs, dev, this.tmp);
          this.t.setBase(snap.id, await this.thinMapped(snap.id), await usedInodes(this.s.fs, dev));
          if (readonly) {
            await this.deactivate(snap.id);
            dev = await this.activate(row, true);
          }
        } else if (size > parent.sizeBytes) {
          await growFs(this.s.fs, dev, this.tmp);
        }
        this.t.setState(snap.id, readonly ? 'view' : 'ready');
      } catch (e) {
        await this.removeLocked(snap.id).catch((e2: unknown) => this.log.warn('cannot undo a failed create', { id: snap.id, err: e2 as Error }));
        throw toStrataError(e, `devmapper driver: creating snapshot ${snap.id}`);
      }
    });
  }

  /** Sends a create message with the row's thin id, moving to a fresh id while the pool says it is taken. */
  private async withFreeThinId(row: DeviceRow, msg: (thinId: number) => string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.pool.message(msg(row.thinId));
        return;
      } catch (e) {
        if (!isStrataError(e, 'AlreadyExists') || attempt >= 64) throw e;
        row.thinId = this.t.reassign(row.snapId);
      }
    }
  }

  private newThin(row: DeviceRow): Promise<void> {
    return this.withFreeThinId(row, (id) => `create_thin ${id}`);
  }

  /** dm-thin: an active origin must be suspended while its snapshot is taken, or in-flight writes may be lost. */
  private async snapshotOf(row: DeviceRow, parent: DeviceRow): Promise<void> {
    const origin = this.devName(parent.snapId);
    const suspend = this.active.has(origin) && (await this.isActive(parent.snapId));
    if (suspend) await dmsetup(['suspend', origin]);
    try {
      await this.withFreeThinId(row, (id) => `create_snap ${id} ${parent.thinId}`);
    } finally {
      if (suspend) await dmsetup(['resume', origin]);
    }
  }

  async mounts(snap: SnapshotRef): Promise<Mount[]> {
    const row = this.rowOf(snap.id);
    const readonly = snap.kind !== 'active';
    const dev = await this.mutex.run(() => this.activate(row, readonly));
    return [{ type: this.s.fs, source: dev, options: [readonly ? 'ro' : 'rw', ...fsMountOptions(this.s.fs)] }];
  }

  private rowOf(id: number): DeviceRow {
    const row = this.table?.get(id);
    if (!row) throw notFound(`devmapper driver: snapshot ${id} has no thin device`);
    return row;
  }

  async commit(snap: SnapshotRef): Promise<void> {
    await this.mutex.run(async () => {
      const row = this.t.get(snap.id);
      if (!row) throw failedPrecondition(`devmapper driver: snapshot ${snap.id} has no thin device to commit`);
      try {
        // Measuring waits for the first usage() that needs the figures (a committed device never changes, so
        // later is as exact as now): under emulation every dmsetup run costs ~0.4 s, and Commit is hot.
        this.t.setState(snap.id, 'committed');
        if (!(await this.deactivate(snap.id))) this.log.info('committed layer still open; deactivating it later', { id: snap.id });
        await this.deactivateIdle();
      } catch (e) {
        throw toStrataError(e, `devmapper driver: committing snapshot ${snap.id}`);
      }
    });
  }

  async remove(id: number): Promise<void> {
    await this.mutex.run(async () => {
      try {
        await this.removeLocked(id);
      } catch (e) {
        throw toStrataError(e, `devmapper driver: removing snapshot ${id}`);
      }
    });
  }

  /** Idempotent: each step tolerates having been done before a crash. */
  private async removeLocked(id: number): Promise<void> {
    const row = this.t.get(id);
    if (row && this.s.discardOnRemove && (row.state === 'ready' || row.state === 'committed')) {
      // Discards pass down to the pool's data device (a loop file punches holes): the space goes back to the
      // host, not only to the pool. A view wrote nothing of its own, so there is nothing to give back. -f: the
      // device holds a filesystem, which is the point.
      const dev = await this.activate(row, false);
      await run('blkdiscard', ['-f', dev]).catch((e: unknown) => this.log.warn('discard failed; deleting anyway', { id, err: e as Error }));
    }
    if (!(await this.deactivate(id))) {
      throw new StrataError('Unavailable', `devmapper driver: ${this.devName(id)} is still open (mounted?); will retry`);
    }
    if (!row) return;
    try {
      await this.pool.message(`delete ${row.thinId}`);
    } catch (e) {
      if (!isDmError(e, /No data available/)) throw e;
    }
    this.t.delete(id);
    this.missing = this.missing.filter((m) => m !== id);
    this.holds.delete(id);
  }

  async usage(snap: SnapshotRef): Promise<DriverUsage> {
    const row = this.rowOf(snap.id);
    // Mapped blocks of a snapshot start as its parent's: what the layer added is the growth since.
    const base = await this.baseline(row);
    if (row.state === 'committed') {
      const m = await this.measureCommitted(row);
      return { size: Math.max(0, m.mapped - base.mapped), inodes: Math.max(0, m.inodes - base.inodes), method: 'thin' };
    }
    const dev = await this.mutex.run(() => this.activate(row, snap.kind !== 'active'));
    const mapped = await this.thinMapped(snap.id);
    const inodes = await usedInodes(this.s.fs, dev);
    return { size: Math.max(0, mapped - base.mapped), inodes: Math.max(0, inodes - base.inodes), method: 'thin' };
  }

  /** What the device held when it was made: its parent's figures, or an empty filesystem's (setBase). */
  private async baseline(row: DeviceRow): Promise<{ mapped: number; inodes: number }> {
    if (row.parentId === null) return { mapped: row.baseMapped, inodes: row.baseInodes };
    const parent = this.t.get(row.parentId);
    if (!parent) return { mapped: row.baseMapped, inodes: row.baseInodes };
    return this.measureCommitted(parent);
  }

  /** A committed layer's mapped bytes and used inodes, measured once (activating it for a moment) and kept. */
  private measureCommitted(row: DeviceRow): Promise<{ mapped: number; inodes: number }> {
    if (row.mapped !== null && row.inodes !== null) return Promise.resolve({ mapped: row.mapped, inodes: row.inodes });
    return this.mutex.run(async () => {
      const wasActive = this.active.has(this.devName(row.snapId));
      const dev = await this.activate(row, true);
      try {
        const m = { mapped: await this.thinMapped(row.snapId), inodes: await usedInodes(this.s.fs, dev) };
        this.t.setCommitted(row.snapId, m.mapped, m.inodes);
        return m;
      } finally {
        if (!wasActive && (this.holds.get(row.snapId) ?? 0) === 0) await this.deactivate(row.snapId);
      }
    });
  }

  private async mountTemp(dev: string, readonly: boolean, prefix: string): Promise<string> {
    fs.mkdirSync(this.tmp, { recursive: true, mode: 0o700 });
    const dir = fs.mkdtempSync(path.join(this.tmp, prefix));
    try {
      native().mount(dev, dir, this.s.fs, readonly ? MS.RDONLY : 0, fsMountOptions(this.s.fs).join(','));
    } catch (e) {
      fs.rmdirSync(dir);
      throw e;
    }
    return dir;
  }

  private async unmountTemp(dir: string): Promise<void> {
    await unmountAll(dir);
    try {
      fs.rmdirSync(dir);
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw e;
    }
  }

  async openApplyTarget(snap: SnapshotRef): Promise<ApplyTarget> {
    if (snap.kind !== 'active') throw failedPrecondition(`devmapper driver: snapshot ${snap.id} is ${snap.kind}, not active`);
    const row = this.rowOf(snap.id);
    const dev = await this.mutex.run(() => this.activate(row, false));
    const dir = await this.mountTemp(dev, false, `apply-${snap.id}-`);
    let released = false;
    return {
      dir,
      // The device holds the parents' files already, so deletions are applied as deletions.
      whiteouts: 'delete',
      lowerDirs: [],
      release: async () => {
        if (released) return;
        released = true;
        await this.unmountTemp(dir);
      },
    };
  }

  async openTree(snap: SnapshotRef): Promise<OpenDir> {
    const row = this.rowOf(snap.id);
    const readonly = snap.kind !== 'active';
    const committed = snap.kind === 'committed';
    const dev = await this.mutex.run(async () => {
      if (committed) this.holds.set(snap.id, (this.holds.get(snap.id) ?? 0) + 1);
      return this.activate(row, readonly);
    });
    let dir: string;
    try {
      dir = await this.mountTemp(dev, readonly, `tree-${snap.id}-`);
    } catch (e) {
      if (committed) await this.releaseHold(snap.id);
      throw e;
    }
    let released = false;
    return {
      dir,
      release: async () => {
        if (released) return;
        released = true;
        await this.unmountTemp(dir);
        if (committed) await this.releaseHold(snap.id);
      },
    };
  }

  private releaseHold(id: number): Promise<void> {
    return this.mutex.run(async () => {
      const n = (this.holds.get(id) ?? 1) - 1;
      if (n > 0) {
        this.holds.set(id, n);
        return;
      }
      this.holds.delete(id);
      if (this.t.get(id)?.state === 'committed') await this.deactivate(id);
    });
  }

  /** Rows (every device strata made has one, see state.ts) plus dm devices with our prefix and no row. */
  async listOnDisk(): Promise<number[]> {
    const ids = new Set(this.t.all().map((r) => r.snapId));
    for (const n of await listDmNames()) {
      if (!n.startsWith(this.prefix)) continue;
      const rest = n.slice(this.prefix.length);
      if (/^[1-9][0-9]*$/.test(rest)) ids.add(Number(rest));
    }
    return [...ids].sort((a, b) => a - b);
  }

  async status(): Promise<Record<string, string>> {
    const pool = await this.pool.describe();
    return {
      ...pool,
      pool_owner: this.s.pool === undefined ? `strata (loopback files in ${this.dir})` : 'external',
      filesystem: this.s.fs,
      base_size_bytes: String(this.s.baseSize),
      discard_on_remove: String(this.s.discardOnRemove),
      active_devices: String(this.active.size),
      thin_devices: String(this.t.all().length),
      missing_devices: this.missing.length === 0 ? 'none' : this.missing.join(','),
      usage_method: 'thin (mapped blocks from dmsetup status)',
      size_limit: 'thin device size (max-size grows the filesystem)',
    };
  }

  async close(): Promise<void> {
    // Devices and the pool stay up across restarts (containers keep running); only the state file closes.
    await this.mutex.run(async () => {
      this.table?.close();
      this.table = undefined;
    });
  }
}
