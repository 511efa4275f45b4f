/**
 * The btrfs driver: one subvolume per snapshot at `<root>/snapshots/<id>/fs`. Prepare and View snapshot the
 * parent's subvolume (a view's snapshot is read-only), Commit sets the read-only flag on the active's subvolume in
 * place (no copy, and no writable subvolume survives a commit), Remove deletes the subvolume (btrfs frees the
 * extents in its cleaner thread, in the background). Every layer holds the whole tree, so a layer applies with
 * plain deletions and mounts as a single bind.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ApplyTarget, CreateOptions, Driver, DriverUsage, OpenDir, SnapshotRef, WhiteoutForm } from '../driver';
import { errnoCode, failedPrecondition, internal, StrataError, toStrataError } from '../../src/core/errors';
import type { Mount } from '../../src/core/types';
import { FS_MAGIC } from '../../native';
import { walkUsage } from '../native/walk-usage';
import { Qgroups } from './qgroup';
import { isSubvolumeRoot, type SubvolOps } from './subvol';

export interface BtrfsSettings {
  root: string;
  ops: SubvolOps;
  /** Enable quotas at init when they are off (a rescan of an existing filesystem may take a while). */
  enableQuota: boolean;
}

const ID_RE = /^[1-9][0-9]*$/;
/** Beside a committed layer's subvolume: its exclusive bytes as measured at commit. */
const USAGE_FILE = 'usage';
const noRelease = (): Promise<void> => Promise.resolve();

export class BtrfsDriver implements Driver {
  readonly name = 'btrfs' as const;
  readonly whiteouts: WhiteoutForm = 'delete';
  readonly canRebase = false;

  private readonly snapshots: string;
  private qgroups = new Qgroups(undefined);
  /** snapshot id → subvolume id; a subvolume's id never changes, so the O(1) usage path skips the ioctl. */
  private readonly subvolIds = new Map<number, number>();
  /** Active snapshots whose subvolume this process made or found writable (see reopenActive). */
  private readonly writable = new Set<number>();

  constructor(private readonly s: BtrfsSettings) {
    this.snapshots = path.join(s.root, 'snapshots');
  }

  dir(id: number): string {
    return path.join(this.snapshots, String(id));
  }
  fsPath(id: number): string {
    return path.join(this.snapshots, String(id), 'fs');
  }

  async init(): Promise<void> {
    fs.mkdirSync(this.s.root, { recursive: true, mode: 0o711 });
    // 0700: layers hold setuid binaries and other images' secrets.
    fs.mkdirSync(this.snapshots, { recursive: true, mode: 0o700 });
    const type = fs.statfsSync(this.snapshots).type;
    if (type !== FS_MAGIC.BTRFS) {
      throw failedPrecondition(`btrfs driver: ${this.s.root} is not on a btrfs filesystem (statfs type 0x${type.toString(16)})`);
    }
    this.qgroups = await Qgroups.discover(this.snapshots);
    if (this.s.enableQuota && this.qgroups.state() === 'disabled') {
      await Qgroups.enable(this.snapshots).catch((e: unknown) => {
        throw toStrataError(e, 'btrfs driver: enabling quotas');
      });
    }
  }

  async create(snap: SnapshotRef, opts: CreateOptions): Promise<void> {
    const dst = this.fsPath(snap.id);
    const readonly = snap.kind === 'view';
    try {
      // Ids are never reused, so anything already here is a half-made leftover of a crash: start over.
      await this.remove(snap.id);
      fs.mkdirSync(this.dir(snap.id), { mode: 0o700 });
      const parent = snap.parents[0];
      if (parent !== undefined) {
        const src = this.fsPath(parent);
        if (!fs.existsSync(src)) throw failedPrecondition(`btrfs driver: parent snapshot ${parent} has no subvolume at ${src}`);
        await this.s.ops.snapshot(src, dst, readonly);
      } else {
        await this.s.ops.create(dst);
        fs.chmodSync(dst, 0o755);
        if (readonly) await this.s.ops.setReadonly(dst, true);
      }
      // A view cannot be written, so a limit would mean nothing there.
      if (opts.sizeLimit !== undefined && opts.sizeLimit > 0 && !readonly) await this.limit(dst, opts.sizeLimit);
      if (!readonly) this.writable.add(snap.id);
    } catch (e) {
      await this.remove(snap.id).catch(() => undefined);
      throw toStrataError(e, `btrfs driver: creating snapshot ${snap.id}`);
    }
  }

  private async limit(subvol: string, bytes: number): Promise<void> {
    const state = this.qgroups.state();
    if (state !== 'enabled' && state !== 'inconsistent') {
      throw failedPrecondition(
        `btrfs driver: a size limit needs btrfs quotas, which are ${state} on ${this.s.root}: run "btrfs quota enable <mountpoint>" or set enable_quota = true in [driver.btrfs]`,
      );
    }
    await this.qgroups.limitExclusive(subvol, bytes);
  }

  /**
   * Commit sets the read-only flag before the core records "committed", so a Commit killed in between leaves an
   * active snapshot on a read-only subvolume: the commit did not happen, and the layer must take writes again
   * (containerd's Commit failed, so whoever retries writes first or prepares anew). Only commit sets the flag on
   * an active's subvolume, so checking once per snapshot per process is enough: a GETFLAGS ioctl, and SETFLAGS
   * only when the flag is set. The usage recorded by that commit goes too: the layer may still change.
   */
  private async reopenActive(snap: SnapshotRef): Promise<void> {
    if (snap.kind !== 'active' || this.writable.has(snap.id)) return;
    try {
      await this.s.ops.setReadonly(this.fsPath(snap.id), false);
      fs.rmSync(path.join(this.dir(snap.id), USAGE_FILE), { force: true });
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') throw failedPrecondition(`btrfs driver: snapshot ${snap.id} has no subvolume at ${this.fsPath(snap.id)}`);
      throw toStrataError(e, `btrfs driver: making active snapshot ${snap.id} writable`);
    }
    this.writable.add(snap.id);
  }

  async mounts(snap: SnapshotRef): Promise<Mount[]> {
    await this.reopenActive(snap);
    return [{ type: 'bind', source: this.fsPath(snap.id), options: ['rbind', snap.kind === 'view' ? 'ro' : 'rw'] }];
  }

  async commit(snap: SnapshotRef): Promise<void> {
    // From here the subvolume may be read-only while the row is still active (a crash, a failed metadata write):
    // the next mounts() checks again.
    this.writable.delete(snap.id);
    try {
      // Setting the flag again on a committed subvolume is a no-op (the native side skips it), so a commit
      // retried after a crash is harmless.
      await this.s.ops.setReadonly(this.fsPath(snap.id), true);
      // The metadata is about to say "committed": the layer's bytes must be on disk first. The same transaction
      // commit makes the qgroup figure final, and the core keeps a committed layer's first usage figure forever.
      await this.s.ops.sync(this.fsPath(snap.id));
      await this.recordCommittedUsage(snap.id);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') throw failedPrecondition(`btrfs driver: snapshot ${snap.id} has no subvolume to commit`);
      throw toStrataError(e, `btrfs driver: committing snapshot ${snap.id}`);
    }
  }

  /**
   * A layer's exclusive bytes are its own only until something snapshots it: once a child shares its extents they
   * stop being exclusive and the figure drops towards zero. So the figure is taken at commit, when no child can
   * exist yet, and kept beside the subvolume.
   */
  private async recordCommittedUsage(id: number): Promise<void> {
    if (this.qgroups.state() !== 'enabled') return;
    const q = this.qgroups.usage(await this.subvolId(id));
    if (q) fs.writeFileSync(path.join(this.dir(id), USAGE_FILE), String(q.exclusive));
  }

  private committedUsage(id: number): number | undefined {
    try {
      const n = Number(fs.readFileSync(path.join(this.dir(id), USAGE_FILE), 'latin1'));
      return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
    } catch {
      return undefined;
    }
  }

  async remove(id: number): Promise<void> {
    const dir = this.dir(id);
    try {
      if (!fs.existsSync(dir)) return;
      await this.destroyTree(this.fsPath(id));
      fs.rmSync(dir, { recursive: true, force: true });
      this.subvolIds.delete(id);
      this.writable.delete(id);
    } catch (e) {
      throw toStrataError(e, `btrfs driver: removing snapshot ${id}`);
    }
  }

  /**
   * Deletes the subvolume at p. A container may have made subvolumes inside its own (`btrfs subvolume create`
   * in a build step); the kernel refuses to delete a subvolume holding others (ENOTEMPTY), so those go first.
   */
  private async destroyTree(p: string): Promise<void> {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return;
      throw e;
    }
    if (!isSubvolumeRoot(st)) {
      fs.rmSync(p, { recursive: true, force: true });
      return;
    }
    try {
      await this.s.ops.destroy(p);
    } catch (e) {
      if (errnoCode(e) !== 'ENOTEMPTY' && !/not empty/i.test(String((e as Error).message))) throw e;
      // Nested subvolumes sit in a directory of the outer one, which must be writable to unlink them.
      await this.s.ops.setReadonly(p, false);
      for (const nested of findNestedSubvolumes(p, st.dev)) await this.destroyTree(nested);
      await this.s.ops.destroy(p);
    }
  }

  /**
   * From the qgroup when quotas are on: O(1), but as of the last transaction commit (btrfs commits every 30 s by
   * default, and at every snapshot, commit and sync), so an active layer's figure may trail its latest writes.
   * Syncing here would make a stats loop flush every container's writes, blocking the event loop meanwhile.
   * btrfs counts no inodes per subvolume, so inodes is 0 on this path.
   */
  async usage(snap: SnapshotRef): Promise<DriverUsage> {
    const state = this.qgroups.state();
    if (snap.kind === 'committed') {
      const recorded = this.committedUsage(snap.id);
      if (recorded !== undefined) return { size: recorded, inodes: 0, method: 'qgroup' };
      // Committed without quotas on at the time: referenced bytes never move, so the growth over the parent is
      // a fair O(1) estimate (it misses what the layer deleted or overwrote).
      if (state === 'enabled') {
        const mine = this.qgroups.referenced(await this.subvolId(snap.id));
        const parent = snap.parents[0];
        const theirs = parent === undefined ? 0 : this.qgroups.referenced(await this.subvolId(parent));
        if (mine !== undefined && theirs !== undefined) return { size: Math.max(0, mine - theirs), inodes: 0, method: 'qgroup' };
      }
      return this.walkLayer(snap);
    }
    if (state === 'enabled') {
      const q = this.qgroups.usage(await this.subvolId(snap.id));
      // No qgroup yet: an empty subvolume made since the last transaction commit (a snapshot commits, so a
      // child of a layer always has one); walking that is cheap.
      if (q) return { size: q.exclusive, inodes: 0, method: 'qgroup' };
    }
    return this.walkLayer(snap);
  }

  /**
   * Without qgroups a layer's own bytes are not recorded anywhere: estimate them as the tree's size less its
   * parent's (every btrfs layer holds the whole tree). Slow, and said so by method 'walk'.
   */
  private async walkLayer(snap: SnapshotRef): Promise<DriverUsage> {
    const mine = await walkUsage(this.fsPath(snap.id));
    const parent = snap.parents[0];
    if (parent === undefined) return { ...mine, method: 'walk' };
    const theirs = await walkUsage(this.fsPath(parent));
    return { size: Math.max(0, mine.size - theirs.size), inodes: Math.max(0, mine.inodes - theirs.inodes), method: 'walk' };
  }

  private async subvolId(id: number): Promise<number> {
    let sv = this.subvolIds.get(id);
    if (sv === undefined) {
      try {
        sv = await this.s.ops.id(this.fsPath(id));
      } catch (e) {
        if (errnoCode(e) === 'ENOENT') throw new StrataError('NotFound', `btrfs driver: snapshot ${id} has no subvolume`);
        throw toStrataError(e, `btrfs driver: subvolume id of snapshot ${id}`);
      }
      this.subvolIds.set(id, sv);
    }
    return sv;
  }

  async openApplyTarget(snap: SnapshotRef): Promise<ApplyTarget> {
    if (snap.kind !== 'active') throw failedPrecondition(`btrfs driver: snapshot ${snap.id} is ${snap.kind}, not active`);
    await this.reopenActive(snap);
    // The subvolume already holds the parents' files, so deletions are applied as deletions and no lower dir is
    // consulted.
    return { dir: this.fsPath(snap.id), whiteouts: 'delete', lowerDirs: [], release: noRelease };
  }

  async openTree(snap: SnapshotRef): Promise<OpenDir> {
    const dir = this.fsPath(snap.id);
    if (!fs.existsSync(dir)) throw internal(`btrfs driver: snapshot ${snap.id} has no subvolume at ${dir}`);
    return { dir, release: noRelease };
  }

  async listOnDisk(): Promise<number[]> {
    let names: string[];
    try {
      names = fs.readdirSync(this.snapshots);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return [];
      throw e;
    }
    return names.filter((n) => ID_RE.test(n)).map(Number).sort((a, b) => a - b);
  }

  async status(): Promise<Record<string, string>> {
    const st = fs.statfsSync(this.snapshots);
    return {
      backing_fs: 'btrfs',
      subvolume_ops: this.s.ops.kind,
      quota: this.qgroups.state(),
      usage_method: this.qgroups.state() === 'enabled' ? 'qgroup (sysfs)' : 'walk',
      qgroup_sysfs: this.qgroups.sysDir ?? '',
      free_bytes: String(st.bavail * st.bsize),
      size_bytes: String(st.blocks * st.bsize),
    };
  }

  async close(): Promise<void> {
    this.subvolIds.clear();
    this.writable.clear();
  }
}

/** Subvolume roots below dir on the same filesystem, outermost first (each is destroyed with its own nesting). */
function findNestedSubvolumes(dir: string, dev: number): string[] {
  const found: string[] = [];
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    for (const ent of fs.readdirSync(d, { withFileTypes: true })) {
      if (!ent.isDirectory()) continue;
      const p = path.join(d, ent.name);
      const st = fs.lstatSync(p);
      // Each subvolume has its own st_dev; a subvolume root below dir is what we are after, not its contents.
      if (isSubvolumeRoot(st) && st.dev !== dev) found.push(p);
      else stack.push(p);
    }
  }
  return found;
}
