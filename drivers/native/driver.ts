/**
 * The native driver: every snapshot is a plain directory `<root>/snapshots/<id>/fs`. An active or view snapshot
 * holds its whole tree: Prepare/View copy the parent's (GNU cp; reflinked where the filesystem shares extents),
 * so it works on any filesystem, and layers are applied into it with real deletions. A layer strata unpacks
 * itself on top of a parent is kept as its changes only (deltas.ts), and made whole again in every snapshot
 * taken from it. A layer's meaning depends on its parent's, so it cannot be rebased.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ApplyTarget, ChangeSet, CreateOptions, Driver, DriverOptions, DriverUsage, OpenDir, SnapshotRef } from '../driver';
import type { Mount } from '../../src/core/types';
import { failedPrecondition } from '../../src/core/errors';
import { DirStore, removeTree } from './dirstore';
import { copyTree, linkTree, probeReflink } from './copy';
import { DELTA_MARK, DELTA_XATTR_PREFIX, isDelta, layersOf, materialize, probeDeltas } from './deltas';
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
  private deltas = { ok: false, reason: 'not probed' };
  private readonly wantDeltas: boolean;

  constructor(opts: DriverOptions) {
    this.store = new DirStore(opts.root);
    const v = opts.config['layer_deltas'];
    this.wantDeltas = !(v === false || v === 'false');
  }

  async init(): Promise<void> {
    this.store.init();
    // Trees made for openTree readers that a crash left behind: hard links only, but 40k inodes' worth each.
    for (const name of fs.readdirSync(this.store.tmp)) {
      if (name.startsWith('tree-')) await removeTree(path.join(this.store.tmp, name));
    }
    this.reflink = probeReflink(this.store.tmp);
    this.deltas = this.wantDeltas ? probeDeltas(this.store.tmp) : { ok: false, reason: 'layer_deltas = false' };
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
    if (opts.applyOnly && this.deltas.ok) {
      // Marked before fs exists: an unmarked fs is always a whole tree, even after a crash mid-create.
      fs.writeFileSync(path.join(dir, DELTA_MARK), '');
      fs.mkdirSync(target, { mode: 0o755 });
      return;
    }
    // Made beside the final name and renamed, so `fs` only ever exists complete.
    const partial = path.join(dir, 'fs.partial');
    if (opts.applyOnly && !this.lim.enabled && (await this.tryLinkTree(snap.parents, partial, dir))) {
      fs.renameSync(partial, target);
      return;
    }
    await materialize(this.store, snap.parents, partial, copyTree);
    fs.renameSync(partial, target);
  }

  /**
   * Where deltas cannot be stored (or layer_deltas = false), a layer being unpacked shares its parent's files as
   * hard links: the applier replaces what the layer changes and leaves the rest, so no file data is copied (on
   * ext4, the benchmark's second and third layers skip rewriting 345 and 457 MB). Not with project quotas: a
   * link into another project is EXDEV, and usage by quota would charge shared inodes to the parent. Anything
   * else that refuses a link (EMLINK on an inode with 65,000 names on ext4) falls back to copying.
   */
  private async tryLinkTree(parents: readonly number[], partial: string, dir: string): Promise<boolean> {
    try {
      // Marked first: a tree sharing inodes must never be mounted writable, even after a crash mid-create.
      fs.writeFileSync(path.join(dir, SHARED_MARK), '');
      await materialize(this.store, parents, partial, linkTree);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOSPC') throw e;
      await removeTree(partial);
      fs.rmSync(path.join(dir, SHARED_MARK), { force: true });
      return false;
    }
  }

  async mounts(snap: SnapshotRef): Promise<Mount[]> {
    // A view, a tree sharing its parent's inodes, and a delta (which is not a tree anyone should see) are read-only.
    const ro = snap.kind === 'view' || fs.existsSync(path.join(this.store.dir(snap.id), SHARED_MARK)) || isDelta(this.store, snap.id);
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
    const dir = this.store.fs(snap.id);
    if (!isDelta(this.store, snap.id)) return { dir, whiteouts: 'delete', lowerDirs: [], release: async () => {} };
    // The applier consults the layers below for implicit directories, copy-ups of hardlinked files and opaque
    // directories: the deltas down to, and including, the nearest whole tree.
    const { whole, deltas } = layersOf(this.store, snap.parents);
    return {
      dir,
      whiteouts: 'overlay',
      lowerDirs: [...deltas, whole].map((id) => this.store.fs(id)),
      overlayXattrPrefix: DELTA_XATTR_PREFIX,
      release: async () => {},
    };
  }

  async openTree(snap: SnapshotRef): Promise<OpenDir> {
    // A whole tree is read in place; readers promise not to write.
    if (!isDelta(this.store, snap.id)) return { dir: this.store.fs(snap.id), release: async () => {} };
    // A delta's tree is made for the reader by linking (no file data is written), and removed by release().
    const tmp = this.store.tempDir(`tree-${snap.id}-`);
    const release = () => removeTree(tmp);
    try {
      await materialize(this.store, [snap.id, ...snap.parents], path.join(tmp, 'fs'), linkTree);
    } catch (e) {
      await release();
      throw e;
    }
    return { dir: path.join(tmp, 'fs'), release };
  }

  async openChanges(snap: SnapshotRef): Promise<ChangeSet | null> {
    if (!isDelta(this.store, snap.id)) return null;
    return { dir: this.store.fs(snap.id), overlayPrefix: DELTA_XATTR_PREFIX, release: async () => {} };
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
      unpackedLayers: this.deltas.ok ? 'changes only (deltas)' : `whole trees: ${this.deltas.reason}`,
      quota: this.lim.description,
      usage: this.lim.enabled ? 'project quota (O(1))' : 'walk',
    };
  }

  async close(): Promise<void> {}
}
