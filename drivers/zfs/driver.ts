/**
 * The ZFS driver: one dataset per snapshot, `<dataset>/<id>`, mounted at `<root>/snapshots/<id>/fs`. Prepare and
 * View clone the parent's `@committed` snapshot (a view's clone is readonly=on), Commit takes `@committed` and sets
 * readonly=on, Remove destroys the dataset; a dataset whose `@committed` still has clones cannot be destroyed, so
 * it is unmounted, marked `strata:removed=yes` and destroyed when its last clone goes (or by Cleanup).
 *
 * Mounting: with the kernel module strata owns mounting (mountpoint=legacy, mount(2) with type zfs). zfs-fuse has
 * no kernel filesystem type, so mount(2) cannot mount its datasets; there the dataset's mountpoint property points
 * at `<root>/snapshots/<id>/fs` and the daemon mounts it (a FUSE mount). Either way containerd gets a bind of
 * that directory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ApplyTarget, CreateOptions, Driver, DriverUsage, OpenDir, SnapshotRef, WhiteoutForm } from '../driver';
import { errnoCode, failedPrecondition, internal, isStrataError, toStrataError } from '../../src/core/errors';
import type { Mount } from '../../src/core/types';
import { MS, native } from '../../native';
import { isZfsError, runZfs } from './exec';
import { isMountPoint } from '../../src/core/mountinfo';
import { DatasetUsedCache } from './usage';

export type MountMode = 'legacy' | 'property';

export interface ZfsSettings {
  root: string;
  /** The parent dataset; snapshots are its children. */
  dataset: string;
  mountMode: MountMode;
}

const SNAP = 'committed';
const REMOVED_PROP = 'strata:removed';
const ID_RE = /^[1-9][0-9]*$/;
const noRelease = (): Promise<void> => Promise.resolve();

export class ZfsDriver implements Driver {
  readonly name = 'zfs' as const;
  readonly whiteouts: WhiteoutForm = 'delete';
  readonly canRebase = false;
  private readonly snapshots: string;
  /** Active snapshots whose dataset this process made or found writable and without @committed (see reopenActive). */
  private readonly writable = new Set<number>();
  private readonly usedCache: DatasetUsedCache;

  constructor(private readonly s: ZfsSettings) {
    this.snapshots = path.join(s.root, 'snapshots');
    this.usedCache = new DatasetUsedCache(s.dataset);
  }

  ds(id: number): string {
    return `${this.s.dataset}/${id}`;
  }
  dir(id: number): string {
    return path.join(this.snapshots, String(id));
  }
  fsPath(id: number): string {
    return path.join(this.snapshots, String(id), 'fs');
  }

  async init(): Promise<void> {
    fs.mkdirSync(this.s.root, { recursive: true, mode: 0o711 });
    fs.mkdirSync(this.snapshots, { recursive: true, mode: 0o700 });
    try {
      await runZfs(['list', '-H', '-o', 'name', this.s.dataset]);
    } catch (e) {
      if (!isStrataError(e, 'NotFound')) throw e;
      // The parent holds no files of its own: never mounted, so its children's mountpoints are all explicit.
      await runZfs(['create', '-p', '-o', 'mountpoint=none', this.s.dataset]);
    }
  }

  async create(snap: SnapshotRef, opts: CreateOptions): Promise<void> {
    const readonly = snap.kind === 'view';
    const props = ['-o', `mountpoint=${this.s.mountMode === 'legacy' ? 'legacy' : this.fsPath(snap.id)}`];
    if (readonly) props.push('-o', 'readonly=on');
    // `quota`, not `refquota`: a clone's referenced bytes include its origin's, so refquota would count the parent
    // layers against the container's limit; `used` of a clone is only what it wrote.
    if (!readonly && opts.sizeLimit !== undefined && opts.sizeLimit > 0) props.push('-o', `quota=${Math.ceil(opts.sizeLimit)}`);
    const parent = snap.parents[0];
    const args = parent !== undefined ? ['clone', ...props, `${this.ds(parent)}@${SNAP}`, this.ds(snap.id)] : ['create', ...props, this.ds(snap.id)];
    try {
      fs.mkdirSync(this.dir(snap.id), { recursive: true, mode: 0o700 });
      try {
        await runZfs(args);
      } catch (e) {
        if (!isZfsError(e, /already exists/)) throw e;
        // Ids are never reused: an existing dataset is a half-made leftover of a crash. Start over.
        await this.destroyNow(snap.id);
        fs.mkdirSync(this.dir(snap.id), { recursive: true, mode: 0o700 });
        await runZfs(args);
      }
      await this.ensureMounted(snap.id, readonly);
      if (!readonly) this.writable.add(snap.id);
    } catch (e) {
      await this.remove(snap.id).catch(() => undefined);
      if (isStrataError(e, 'NotFound') && parent !== undefined) {
        throw failedPrecondition(`zfs driver: parent snapshot ${parent} has no ${this.ds(parent)}@${SNAP}`);
      }
      throw toStrataError(e, `zfs driver: creating snapshot ${snap.id}`);
    }
  }

  /** Is something mounted on dir? From the mount table: stat-ing a FUSE mountpoint can hang (see isMountPoint). */
  private isMounted(dir: string): boolean {
    return isMountPoint(dir);
  }

  /**
   * Mounts the dataset when it is not (after a reboot or a zfs-fuse restart nothing is). Costs one read of the
   * mount table when it is, so every mounts()/openApplyTarget() can afford it.
   */
  private async ensureMounted(id: number, readonly: boolean): Promise<void> {
    const dir = this.fsPath(id);
    if (this.isMounted(dir)) return;
    if (this.s.mountMode === 'property') {
      await runZfs(['mount', this.ds(id)]);
      return;
    }
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    native().mount(this.ds(id), dir, 'zfs', readonly ? MS.RDONLY : 0, '');
  }

  private async unmount(id: number): Promise<void> {
    const dir = this.fsPath(id);
    if (!this.isMounted(dir)) return;
    if (this.s.mountMode === 'property') {
      await runZfs(['unmount', this.ds(id)]).catch(async (e: unknown) => {
        if (!isStrataError(e, 'Unavailable')) throw e;
        await runZfs(['unmount', '-f', this.ds(id)]);
      });
    } else {
      native().umount2(dir, 0);
    }
  }

  /**
   * Commit takes @committed and sets readonly=on before the core records "committed", so a Commit killed in
   * between leaves an active snapshot whose dataset is read-only and carries a snapshot of the layer as it was
   * then. The commit did not happen: the layer must take writes again, and that @committed is stale (nothing can
   * clone it, since only committed rows are parents). Only commit makes either, so checking once per snapshot per
   * process is enough (two `zfs` commands, ~20 ms each on zfs-fuse).
   */
  private async reopenActive(snap: SnapshotRef): Promise<void> {
    if (snap.kind !== 'active' || this.writable.has(snap.id)) return;
    const ds = this.ds(snap.id);
    try {
      await runZfs(['destroy', `${ds}@${SNAP}`]).catch((e: unknown) => {
        if (!isStrataError(e, 'NotFound')) throw e;
      });
      // Not read from the property first: zfs-fuse reports readonly "off" (source "temporary") for a mounted
      // dataset after `zfs set readonly=on`, though writes fail with EROFS. inherit restores what create made (no
      // local value), and the mounted dataset follows at once (zfs-fuse and the kernel module alike).
      await runZfs(['inherit', 'readonly', ds]);
    } catch (e) {
      if (isStrataError(e, 'NotFound')) throw failedPrecondition(`zfs driver: snapshot ${snap.id} has no dataset ${ds}`);
      throw toStrataError(e, `zfs driver: making active snapshot ${snap.id} writable`);
    }
    this.writable.add(snap.id);
  }

  async mounts(snap: SnapshotRef): Promise<Mount[]> {
    await this.reopenActive(snap);
    await this.ensureMounted(snap.id, snap.kind === 'view');
    return [{ type: 'bind', source: this.fsPath(snap.id), options: ['rbind', snap.kind === 'view' ? 'ro' : 'rw'] }];
  }

  async commit(snap: SnapshotRef): Promise<void> {
    const ds = this.ds(snap.id);
    // From here the dataset may be read-only while the row is still active (a crash, a failed metadata write):
    // the next mounts() checks again.
    this.writable.delete(snap.id);
    try {
      await runZfs(['snapshot', `${ds}@${SNAP}`]).catch(async (e: unknown) => {
        if (!isZfsError(e, /already exists/)) throw e;
        // A commit retried after a crash finds the snapshot the killed one took, but the layer may have been
        // written since (through a mount that outlived the daemon): take it again, so the layer is what it is now.
        // No clone can depend on it, since the row is still active.
        await runZfs(['destroy', `${ds}@${SNAP}`]);
        await runZfs(['snapshot', `${ds}@${SNAP}`]);
      });
      await runZfs(['set', 'readonly=on', ds]);
    } catch (e) {
      if (isStrataError(e, 'NotFound')) throw failedPrecondition(`zfs driver: snapshot ${snap.id} has no dataset ${ds} to commit`);
      throw toStrataError(e, `zfs driver: committing snapshot ${snap.id}`);
    }
  }

  /**
   * Destroys the dataset with its @committed snapshot. A dataset whose @committed still has clones (a child layer
   * or a view outlives it, which the core allows only for views and removes of orphans) is parked instead:
   * unmounted, mountpoint=none, marked; the removal of its last clone, or Cleanup, destroys it.
   */
  async remove(id: number): Promise<void> {
    this.writable.delete(id);
    this.usedCache.forget(this.ds(id));
    try {
      await this.removeChain(id);
    } catch (e) {
      throw toStrataError(e, `zfs driver: removing snapshot ${id}`);
    }
  }

  private async removeChain(id: number): Promise<void> {
    let origin = '';
    try {
      origin = (await runZfs(['get', '-Hp', '-o', 'value', 'origin', this.ds(id)])).trim();
    } catch (e) {
      if (!isStrataError(e, 'NotFound')) throw e;
      this.removeDir(id);
      return;
    }
    const destroyed = await this.destroyNow(id);
    if (!destroyed) {
      await runZfs(['set', 'mountpoint=none', this.ds(id)]);
      await runZfs(['set', `${REMOVED_PROP}=yes`, this.ds(id)]);
      this.removeDir(id);
      return;
    }
    // This was maybe the last clone keeping a removed parent alive.
    const parentId = this.idOfOrigin(origin);
    if (parentId !== undefined && (await this.isParked(parentId))) await this.removeChain(parentId);
  }

  /** Destroys now, or returns false when clones depend on the dataset. Idempotent. */
  private async destroyNow(id: number): Promise<boolean> {
    await this.unmount(id);
    try {
      await runZfs(['destroy', '-r', this.ds(id)]);
    } catch (e) {
      if (isStrataError(e, 'NotFound')) {
        this.removeDir(id);
        return true;
      }
      if (isZfsError(e, /dependent clones/)) return false;
      if (!isStrataError(e, 'Unavailable')) throw e;
      // Busy: a process sits in the tree, or zfs-fuse is still settling a fresh mount (seen for a moment after
      // create). -f unmounts by force; a few short retries cover the settling case, the reclaimer the rest.
      for (let attempt = 0; ; attempt++) {
        try {
          await runZfs(['destroy', '-r', '-f', this.ds(id)]);
          break;
        } catch (e2) {
          if (!isStrataError(e2, 'Unavailable') || attempt >= 4) throw e2;
          await sleep(50 * (attempt + 1));
        }
      }
    }
    this.removeDir(id);
    return true;
  }

  /** Deletes <root>/snapshots/<id> once nothing is mounted there (a mounted dataset's files must never go). */
  private removeDir(id: number): void {
    if (this.isMounted(this.fsPath(id))) throw internal(`zfs driver: ${this.fsPath(id)} is still mounted`);
    fs.rmSync(this.dir(id), { recursive: true, force: true });
  }

  private idOfOrigin(origin: string): number | undefined {
    const prefix = `${this.s.dataset}/`;
    if (!origin.startsWith(prefix) || !origin.endsWith(`@${SNAP}`)) return undefined;
    const name = origin.slice(prefix.length, -(SNAP.length + 1));
    return ID_RE.test(name) ? Number(name) : undefined;
  }

  private async isParked(id: number): Promise<boolean> {
    try {
      return (await runZfs(['get', '-H', '-o', 'value', REMOVED_PROP, this.ds(id)])).trim() === 'yes';
    } catch (e) {
      if (isStrataError(e, 'NotFound')) return false;
      throw e;
    }
  }

  /**
   * Bytes the layer wrote itself: `used` of a clone excludes its origin's blocks. Any file count costs the same;
   * the figure comes from the cache (usage.ts), which spawns `zfs` only when the dataset changed.
   */
  async usage(snap: SnapshotRef): Promise<DriverUsage> {
    const size = await this.usedCache.used(this.ds(snap.id), this.fsPath(snap.id));
    // ZFS keeps no per-layer inode count (a clone's object count includes its origin's files).
    return { size, inodes: 0, method: 'dataset' };
  }

  async openApplyTarget(snap: SnapshotRef): Promise<ApplyTarget> {
    if (snap.kind !== 'active') throw failedPrecondition(`zfs driver: snapshot ${snap.id} is ${snap.kind}, not active`);
    await this.reopenActive(snap);
    await this.ensureMounted(snap.id, false);
    // The clone already holds the parents' files, so deletions are applied as deletions.
    return { dir: this.fsPath(snap.id), whiteouts: 'delete', lowerDirs: [], release: noRelease };
  }

  async openTree(snap: SnapshotRef): Promise<OpenDir> {
    await this.ensureMounted(snap.id, snap.kind !== 'active');
    return { dir: this.fsPath(snap.id), release: noRelease };
  }

  /**
   * Datasets below the parent (one `zfs list`), plus leftover directories without a dataset. A parked dataset is
   * listed only once no clone depends on it any more, so Cleanup's remove() can finally destroy it.
   */
  async listOnDisk(): Promise<number[]> {
    const out = await runZfs(['list', '-H', '-o', `name,origin,${REMOVED_PROP}`, '-t', 'filesystem', '-r', '-d', '1', this.s.dataset]);
    const origins = new Set<string>();
    const rows: Array<{ id: number; parked: boolean }> = [];
    const prefix = `${this.s.dataset}/`;
    for (const line of out.split('\n')) {
      const [name, origin, removed] = line.split('\t');
      if (!name || !origin) continue;
      if (origin !== '-') origins.add(origin.split('@')[0]!);
      if (!name.startsWith(prefix)) continue;
      const rest = name.slice(prefix.length);
      if (ID_RE.test(rest)) rows.push({ id: Number(rest), parked: removed === 'yes' });
    }
    const ids = new Set<number>();
    for (const r of rows) if (!r.parked || !origins.has(this.ds(r.id))) ids.add(r.id);
    const withDataset = new Set(rows.map((r) => r.id));
    let names: string[] = [];
    try {
      names = fs.readdirSync(this.snapshots);
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw e;
    }
    for (const n of names) if (ID_RE.test(n) && !withDataset.has(Number(n))) ids.add(Number(n));
    return [...ids].sort((a, b) => a - b);
  }

  async status(): Promise<Record<string, string>> {
    const out = await runZfs(['get', '-Hp', '-o', 'property,value', 'used,available', this.s.dataset]);
    const props: Record<string, string> = {};
    for (const line of out.split('\n')) {
      const [k, v] = line.split('\t');
      if (k && v !== undefined) props[k] = v;
    }
    return {
      dataset: this.s.dataset,
      mount_mode: this.s.mountMode === 'legacy' ? 'legacy (strata mounts)' : 'mountpoint property (zfs mounts)',
      usage_method: 'dataset (zfs used property, cached while statfs of the mount is unchanged)',
      size_limit: 'quota',
      used_bytes: props['used'] ?? '',
      available_bytes: props['available'] ?? '',
    };
  }

  async close(): Promise<void> {
    // Datasets stay mounted across restarts; nothing is held open.
    this.writable.clear();
  }
}
