/**
 * The overlay driver, laid out like containerd's overlay snapshotter: `<root>/snapshots/<id>/fs` is the layer
 * (the upper dir while active), `<root>/snapshots/<id>/work` overlay's work dir. A layer holds only its own
 * changes, with deletions as overlay whiteouts, so its bytes do not depend on its parent (rebase is possible).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ApplyTarget, ChangeSet, CreateOptions, Driver, DriverOptions, DriverUsage, OpenDir, SnapshotRef } from '../driver';
import type { Mount } from '../../src/core/types';
import { failedPrecondition } from '../../src/core/errors';
import { mountTemp } from '../../src/core/mount';
import { DirStore } from '../native/dirstore';
import { detectQuota, Limits } from '../native/limits';
import { walkUsage } from '../native/walk-usage';
import { probeOverlay, type OverlayFeatures } from './features';
import { linkName, overlayMount, snapshotMounts, type OverlayLayout, type OverlayMounts } from './mounts';

export class OverlayDriver implements Driver {
  readonly name = 'overlay' as const;
  readonly whiteouts = 'overlay' as const;
  readonly canRebase = true;
  private readonly store: DirStore;
  private readonly linkDir: string;
  private readonly layout: OverlayLayout;
  private features: OverlayFeatures | undefined;
  private limits: Limits | undefined;

  constructor(opts: DriverOptions) {
    this.store = new DirStore(opts.root);
    this.linkDir = path.join(opts.root, 'l');
    this.layout = {
      fs: (id) => this.store.fs(id),
      work: (id) => this.store.work(id),
      link: (id) => path.join(this.linkDir, linkName(id)),
    };
  }

  async init(): Promise<void> {
    this.store.init();
    fs.mkdirSync(this.linkDir, { recursive: true, mode: 0o700 });
    const p = await probeOverlay(this.store.root);
    if (!p.ok) throw failedPrecondition(`overlay driver unavailable: ${p.reason}`);
    this.features = p.features;
    this.limits = new Limits(await detectQuota(this.store.root), this.store.root);
  }

  private ready(): { f: OverlayFeatures; lim: Limits } {
    if (!this.features || !this.limits) throw failedPrecondition('overlay driver used before init()');
    return { f: this.features, lim: this.limits };
  }

  async create(snap: SnapshotRef, opts: CreateOptions): Promise<void> {
    const { lim } = this.ready();
    const dir = this.store.dir(snap.id);
    await this.store.freshDir(snap.id);
    // Before any content, so the project (and its limit) covers every file the layer will hold.
    await lim.setup(dir, snap.id, opts.sizeLimit);
    const upper = this.store.fs(snap.id);
    fs.mkdirSync(upper, { mode: 0o755 });
    const parent = snap.parents[0];
    if (parent !== undefined) {
      // The merged root takes the upper's attributes: start from the parent's root so an unchanged root
      // keeps its owner and mode (containerd copies the owner).
      const st = fs.statSync(this.store.fs(parent));
      fs.chownSync(upper, st.uid, st.gid);
      fs.chmodSync(upper, st.mode & 0o7777);
    }
    if (snap.kind === 'active') fs.mkdirSync(this.store.work(snap.id), { mode: 0o700 });
  }

  private realise(m: OverlayMounts): Mount[] {
    for (const id of m.linksNeeded) {
      const link = this.layout.link(id);
      try {
        fs.symlinkSync(path.join('..', 'snapshots', String(id), 'fs'), link);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
    return m.mounts;
  }

  async mounts(snap: SnapshotRef): Promise<Mount[]> {
    return this.realise(snapshotMounts(snap, this.layout, this.ready().f));
  }

  async commit(_snap: SnapshotRef): Promise<void> {
    // Nothing changes on disk, as in containerd: a committed layer is only ever mounted as a lower from now on.
    // The work dir stays; deleting it under an overlay still mounted would break that mount's copy-ups.
  }

  async remove(id: number): Promise<void> {
    fs.rmSync(this.layout.link(id), { force: true });
    await this.store.removeDir(id);
    if (this.limits) await this.limits.release(id);
  }

  async usage(snap: SnapshotRef): Promise<DriverUsage> {
    const q = await this.ready().lim.usage(snap.id);
    if (q) return { ...q, method: 'quota' };
    return { ...(await walkUsage(this.store.fs(snap.id))), method: 'walk' };
  }

  async openApplyTarget(snap: SnapshotRef): Promise<ApplyTarget> {
    return {
      dir: this.store.fs(snap.id),
      whiteouts: 'overlay',
      lowerDirs: snap.parents.map((id) => this.store.fs(id)),
      overlayXattrPrefix: this.xattrPrefix(),
      release: async () => {},
    };
  }

  async openChanges(snap: SnapshotRef): Promise<ChangeSet | null> {
    // A view has no layer of its own.
    if (snap.kind === 'view') return null;
    return { dir: this.store.fs(snap.id), overlayPrefix: this.xattrPrefix(), release: async () => {} };
  }

  /** Where overlay keeps its own xattrs (opaque dirs) in the layers this driver mounts. */
  private xattrPrefix(): 'trusted.overlay.' | 'user.overlay.' {
    return this.ready().f.userxattr ? 'user.overlay.' : 'trusted.overlay.';
  }

  async openTree(snap: SnapshotRef): Promise<OpenDir> {
    const { f } = this.ready();
    // A view's own fs is empty: its tree is its parents'.
    const layers = snap.kind === 'view' && snap.parents.length > 0 ? [...snap.parents] : [snap.id, ...snap.parents];
    if (layers.length === 1) return { dir: this.store.fs(layers[0]!), release: async () => {} };
    // Lowers only: the kernel makes the overlay read-only.
    const mounts = this.realise(overlayMount(layers, undefined, this.layout, f));
    return mountTemp(mounts, this.store.tmp, `tree-${snap.id}-`);
  }

  async listOnDisk(): Promise<number[]> {
    return this.store.listOnDisk();
  }

  async status(): Promise<Record<string, string>> {
    const { f, lim } = this.ready();
    return {
      driver: 'overlay',
      root: this.store.root,
      backingFs: f.backingFs,
      userxattr: f.userxattr ? 'yes (not in the initial user namespace)' : 'no (trusted.overlay.* xattrs)',
      indexOff: f.indexOff ? 'yes' : 'no (kernel has no index feature)',
      lowerdirPlus: f.lowerdirPlus ? 'supported by the kernel (unused: mount(2) data is one page either way)' : 'no',
      quota: lim.description,
      usage: lim.enabled ? 'project quota (O(1))' : 'walk',
    };
  }

  async close(): Promise<void> {}
}
