/**
 * The native driver: every snapshot is a plain directory `<root>/snapshots/<id>/fs` holding its whole tree.
 * Prepare/View copy the parent's tree (GNU cp; reflinked where the filesystem shares extents), so it works on any
 * filesystem, and layers are applied with real deletions. A layer's bytes are its parent's plus its changes,
 * so it cannot be rebased.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ApplyTarget, CreateOptions, Driver, DriverOptions, DriverUsage, OpenDir, SnapshotRef } from '../driver';
import type { Mount } from '../../src/core/types';
import { failedPrecondition } from '../../src/core/errors';
import { DirStore, removeTree } from './dirstore';
import { copyTree, linkTree, probeReflink } from './copy';
import { detectQuota, Limits } from './limits';
import { walkUsage } from './walk-usage';

/** In a snapshot's directory: its tree hard-links its parent's files (an applyOnly snapshot). */
const SHARED_MARK = 'shares-parent-inodes';

export class NativeDriver implements Driver {
  readonly name = 'native' as const;
  readonly whiteouts = 'delete' as const;
  readonly canRebase = false;
  private readonly store: DirStore;
  private limits: Limits | undefined;
  private reflink = { ok: false, reason: 'not probed' };

  constructor(opts: DriverOptions) {
    this.store = new DirStore(opts.root);
  }

  async init(): Promise<void> {
    this.store.init();
    this.reflink = probeReflink(this.store.tmp);
    this.limits = new Limits(await detectQuota(this.store.root), this.store.root);
  }

  private get lim(): Limits {
    if (!this.limits) throw failedPrecondition('native driver used before init()');
    return this.limits;
  }

  async create(snap: SnapshotRef, opts: CreateOptions): Promise<void> {
    const dir = this.store.dir(snap.id);
    const target = this.store.fs(snap.id);
    await this.store.freshDir(snap.id);
    await this.lim.setup(dir, snap.id, opts.sizeLimit);
    const parent = snap.parents[0];
    if (parent === undefined) {
      fs.mkdirSync(target, { mode: 0o755 });
      return;
    }
    // Copy beside the final name and rename, so `fs` only ever exists complete.
    const partial = path.join(dir, 'fs.partial');
    if (opts.applyOnly && !this.lim.enabled && (await this.tryLinkTree(parent, partial, dir))) {
      fs.renameSync(partial, target);
      return;
    }
    await copyTree(this.store.fs(parent), partial);
    fs.renameSync(partial, target);
  }

  /**
   * A layer being unpacked shares its parent's files as hard links: the applier replaces what the layer changes
   * and leaves the rest, so no file data is copied (on ext4, the benchmark's second and third layers skip
   * rewriting 345 and 457 MB). Not with project quotas: a link into another project is EXDEV, and usage by
   * quota would charge shared inodes to the parent. Anything else that refuses a link (EMLINK on an inode with
   * 65,000 names on ext4) falls back to copying.
   */
  private async tryLinkTree(parent: number, partial: string, dir: string): Promise<boolean> {
    try {
      // Marked first: a tree sharing inodes must never be mounted writable, even after a crash mid-create.
      fs.writeFileSync(path.join(dir, SHARED_MARK), '');
      await linkTree(this.store.fs(parent), partial);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOSPC') throw e;
      await removeTree(partial);
      fs.rmSync(path.join(dir, SHARED_MARK), { force: true });
      return false;
    }
  }

  async mounts(snap: SnapshotRef): Promise<Mount[]> {
    const ro = snap.kind === 'view' || fs.existsSync(path.join(this.store.dir(snap.id), SHARED_MARK));
    return [{ type: 'bind', source: this.store.fs(snap.id), options: [ro ? 'ro' : 'rw', 'rbind'] }];
  }

  async commit(_snap: SnapshotRef): Promise<void> {
    // Nothing to do on disk: a committed tree is only ever copied from, never mounted writable again.
  }

  async remove(id: number): Promise<void> {
    await this.store.removeDir(id);
    await this.lim.release(id);
  }

  async usage(snap: SnapshotRef): Promise<DriverUsage> {
    const q = await this.lim.usage(snap.id);
    if (q) return { ...q, method: 'quota' };
    return { ...(await walkUsage(this.store.fs(snap.id))), method: 'walk' };
  }

  async openApplyTarget(snap: SnapshotRef): Promise<ApplyTarget> {
    return { dir: this.store.fs(snap.id), whiteouts: 'delete', lowerDirs: [], release: async () => {} };
  }

  async openTree(snap: SnapshotRef): Promise<OpenDir> {
    // The directory already holds the whole tree; readers promise not to write.
    return { dir: this.store.fs(snap.id), release: async () => {} };
  }

  async listOnDisk(): Promise<number[]> {
    return this.store.listOnDisk();
  }

  async status(): Promise<Record<string, string>> {
    return {
      driver: 'native',
      root: this.store.root,
      backingFs: this.store.backingFs(),
      reflink: this.reflink.ok ? 'yes' : `no: ${this.reflink.reason}`,
      quota: this.lim.description,
      usage: this.lim.enabled ? 'project quota (O(1))' : 'walk',
    };
  }

  async close(): Promise<void> {}
}
