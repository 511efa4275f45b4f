/**
 * Subvolume operations, two ways: the btrfs ioctls through native/ (the default: no process per operation) and
 * the `btrfs` program (a fallback when the addon lacks the ioctls, and the baseline the ops bench compares with).
 * Both take absolute paths; the ioctl side opens the directories itself and closes them before returning.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { O, native, type NativeBinding } from '../../native';
import { runBtrfs } from './exec';

export type SubvolOpsKind = 'ioctl' | 'cli';

export interface SubvolOps {
  readonly kind: SubvolOpsKind;
  /** A new empty subvolume at dst (its parent directory must exist). */
  create(dst: string): Promise<void>;
  /** A snapshot of the subvolume at src, at dst. */
  snapshot(src: string, dst: string, readonly: boolean): Promise<void>;
  /** Deletes the subvolume at target (read-only or not); the space is freed by btrfs's cleaner thread. */
  destroy(target: string): Promise<void>;
  setReadonly(target: string, readonly: boolean): Promise<void>;
  /** The subvolume id (tree id), which names its level-0 qgroup `0/<id>`. */
  id(target: string): Promise<number>;
  /** Commits the filesystem's transaction: data on disk, qgroup figures current. */
  sync(target: string): Promise<void>;
}

const DIR_FLAGS = O.RDONLY | O.DIRECTORY | O.CLOEXEC;

function withDir<T>(dir: string, f: (fd: number) => T): T {
  const fd = fs.openSync(dir, DIR_FLAGS);
  try {
    return f(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** The native addon has the btrfs ioctls (it may predate them on an old build). */
export function ioctlsAvailable(): boolean {
  try {
    const n = native();
    return typeof n.btrfsSubvolSnapshot === 'function' && typeof n.btrfsSubvolId === 'function';
  } catch {
    return false;
  }
}

/**
 * The ioctls are synchronous: snapshot creation and SETFLAGS wait for a transaction commit (a few ms on an idle
 * disk). That blocks the event loop for that long, which is still far less than spawning `btrfs` (see the bench).
 */
export class IoctlSubvolOps implements SubvolOps {
  readonly kind = 'ioctl' as const;
  private readonly n: NativeBinding = native();

  async create(dst: string): Promise<void> {
    withDir(path.dirname(dst), (parent) => this.n.btrfsSubvolCreate(parent, path.basename(dst)));
  }
  async snapshot(src: string, dst: string, readonly: boolean): Promise<void> {
    withDir(src, (s) => withDir(path.dirname(dst), (parent) => this.n.btrfsSubvolSnapshot(s, parent, path.basename(dst), readonly)));
  }
  async destroy(target: string): Promise<void> {
    withDir(path.dirname(target), (parent) => this.n.btrfsSubvolDelete(parent, path.basename(target)));
  }
  async setReadonly(target: string, readonly: boolean): Promise<void> {
    withDir(target, (fd) => this.n.btrfsSetReadonly(fd, readonly));
  }
  async id(target: string): Promise<number> {
    return withDir(target, (fd) => this.n.btrfsSubvolId(fd));
  }
  async sync(target: string): Promise<void> {
    withDir(target, (fd) => this.n.syncfs(fd));
  }
}

export class CliSubvolOps implements SubvolOps {
  readonly kind = 'cli' as const;

  async create(dst: string): Promise<void> {
    await runBtrfs(['subvolume', 'create', dst]);
  }
  async snapshot(src: string, dst: string, readonly: boolean): Promise<void> {
    await runBtrfs(['subvolume', 'snapshot', ...(readonly ? ['-r'] : []), src, dst]);
  }
  async destroy(target: string): Promise<void> {
    await runBtrfs(['subvolume', 'delete', target]);
  }
  async setReadonly(target: string, readonly: boolean): Promise<void> {
    await runBtrfs(['property', 'set', '-t', 'subvol', target, 'ro', readonly ? 'true' : 'false']);
  }
  async id(target: string): Promise<number> {
    const out = await runBtrfs(['inspect-internal', 'rootid', target]);
    const n = Number(out.trim());
    if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`btrfs inspect-internal rootid ${target}: unexpected output ${JSON.stringify(out)}`);
    return n;
  }
  async sync(target: string): Promise<void> {
    await runBtrfs(['filesystem', 'sync', target]);
  }
}

export function subvolOps(kind: SubvolOpsKind): SubvolOps {
  return kind === 'ioctl' ? new IoctlSubvolOps() : new CliSubvolOps();
}

/** btrfs gives every subvolume's root directory inode 256 (BTRFS_FIRST_FREE_OBJECTID). */
export const SUBVOL_ROOT_INO = 256;

/** Is dir the root of a subvolume? (lstat only; a plain directory never has inode 256 on btrfs.) */
export function isSubvolumeRoot(st: fs.Stats): boolean {
  return st.isDirectory() && st.ino === SUBVOL_ROOT_INO;
}
