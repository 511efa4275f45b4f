/**
 * The filesystems the unpack benchmark targets, each brought up for one pass and torn down after it:
 *   ext4   a loopback ext4 (8 GiB sparse image, mkfs.ext4's defaults, so with a journal as on any node);
 *          drivers overlay and native
 *   host   the filesystem of the work directory; drivers overlay and native. Not a default: this VM's root is
 *          an ext4 without a journal, and such an ext4 will not reuse an inode freed in the last 60 s
 *          (ialloc.c's recently_deleted(), checked only when s_journal is NULL), scanning past each one on
 *          every create. After a contender removes its 46k-entry tree, the next one's creates cost ~1 ms of
 *          kernel CPU each: snapctl apply of the base layer took 3.1 s on a quiet disk and 27-35 s right after
 *          a removal (30 s of it system time; perf: recently_deleted, find_get_block_common), so every row's
 *          samples spread 2-3x with whoever ran after whom
 *   btrfs  a loopback btrfs (8 GiB sparse image, qgroups off); drivers btrfs and overlay, roots on the btrfs
 *   zfs    a zfs-fuse pool (8 GiB sparse image); the zfs driver. Targets of apply/tar are a dataset mounted by
 *          zfs-fuse; containerd's overlayfs runs there only if the kernel accepts an upper dir on it (probed)
 * The backends come from test/helpers/backends.ts, so their names carry this pid and cleanupStale() of a later
 * run removes what a killed benchmark left.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backendMissing, createBtrfs, createExt4, createZfsPool, run } from '../../test/helpers/backends';
import { removeTreeUnmounting, type DriverTable } from '../../test/helpers/daemon';

export type FsKind = 'ext4' | 'host' | 'btrfs' | 'zfs';
export const FS_KINDS: readonly FsKind[] = ['ext4', 'host', 'btrfs', 'zfs'];
/** What a run without --fs measures. */
export const DEFAULT_FS: readonly FsKind[] = ['ext4', 'btrfs', 'zfs'];

/** Whether `snapctl import` of the whole image is timed on kind (through an overlay daemon; the ext4 kinds). */
export function hasImportRow(kind: FsKind): boolean {
  return kind === 'ext4' || kind === 'host';
}
export type DriverName = 'overlay' | 'native' | 'btrfs' | 'zfs';

/** Big enough for every target of a run at once (layers ~700 MB unpacked; apply, tar, drivers, containerd). */
const IMAGE_MIB = 8192;

export interface DaemonSpec {
  driver: DriverName;
  root: string;
  config: DriverTable;
  /** The root is removed by the filesystem's teardown, not after its daemon (zfs: only after the pool is gone). */
  keepRoot?: boolean;
}

export interface BenchFs {
  kind: FsKind;
  /** What `stat -f` calls the filesystem the targets are on. */
  type: string;
  /** Where snapctl apply and tar extract. */
  targets: string;
  drivers: readonly DriverName[];
  /** A fresh root (and dataset) for one daemon; tag makes it unique within the pass. */
  daemon(driver: DriverName, tag: string): DaemonSpec;
  /** containerd's directory on this filesystem, or why containerd's overlayfs cannot run on it. */
  containerd: { dir: string } | { skip: string };
  teardown(): Promise<void>;
}

/** The mounted filesystem's type (`stat -f` cannot tell ext4 from ext2/ext3). */
function fsType(dir: string): string {
  return execFileSync('findmnt', ['-n', '-o', 'FSTYPE', '--target', dir], { encoding: 'utf8' }).trim();
}

/** Why `kind` cannot be set up here (tests' reasons), or undefined. */
export async function fsMissing(kind: FsKind): Promise<string | undefined> {
  return kind === 'host' ? undefined : backendMissing(kind);
}

export async function setupFs(kind: FsKind, work: string): Promise<BenchFs> {
  if (kind === 'host') return hostFs(work);
  if (kind === 'ext4') return loopFs('ext4', ['overlay', 'native']);
  if (kind === 'btrfs') return loopFs('btrfs', ['btrfs', 'overlay']);
  return zfsFs();
}

function hostFs(work: string): BenchFs {
  const targets = path.join(work, 'targets');
  const roots = path.join(work, 'roots');
  const cdir = path.join(work, 'containerd');
  for (const d of [targets, roots, cdir]) fs.rmSync(d, { recursive: true, force: true });
  fs.mkdirSync(targets, { recursive: true });
  fs.mkdirSync(cdir, { recursive: true });
  return {
    kind: 'host',
    type: fsType(work),
    targets,
    drivers: ['overlay', 'native'],
    daemon: (driver, tag) => ({ driver, root: path.join(roots, `${driver}-${tag}`), config: {} }),
    containerd: { dir: cdir },
    async teardown() {
      for (const d of [targets, roots, cdir]) await removeTreeUnmounting(d);
    },
  };
}

/** A loopback filesystem (ext4 with a journal, or btrfs) holding the targets, containerd and the daemons' roots. */
async function loopFs(kind: 'ext4' | 'btrfs', drivers: readonly DriverName[]): Promise<BenchFs> {
  const b = await (kind === 'ext4' ? createExt4 : createBtrfs)({ sizeMiB: IMAGE_MIB, quota: false });
  const targets = path.join(b.mountpoint, 'targets');
  fs.mkdirSync(targets);
  fs.mkdirSync(path.join(b.mountpoint, 'containerd'));
  return {
    kind,
    type: fsType(b.mountpoint),
    targets,
    drivers,
    daemon: (driver, tag) => ({ driver, root: path.join(b.mountpoint, 'roots', `${driver}-${tag}`), config: {} }),
    containerd: { dir: path.join(b.mountpoint, 'containerd') },
    teardown: () => b.cleanup(),
  };
}

async function zfsFs(): Promise<BenchFs> {
  const pool = await createZfsPool({ sizeMiB: IMAGE_MIB });
  // The pool's directory under BACKEND_BASE (host fs) is removed by cleanup() after the pool is destroyed: the
  // daemons' roots (metadata; the zfs-fuse mounts of datasets) and the bench dataset's mountpoint live there.
  const base = path.dirname(pool.image);
  try {
    const mnt = path.join(base, 'bench');
    await run('zfs', ['create', '-o', `mountpoint=${mnt}`, `${pool.pool}/bench`]);
    const targets = path.join(mnt, 'targets');
    fs.mkdirSync(targets);
    const why = await overlayUpperRefused(mnt);
    if (!why) fs.mkdirSync(path.join(mnt, 'containerd'));
    return {
      kind: 'zfs',
      type: `${fsType(mnt)} (zfs-fuse)`,
      targets,
      drivers: ['zfs'],
      daemon: (driver, tag) => ({ driver, root: path.join(base, 'roots', `${driver}-${tag}`), config: { dataset: `${pool.dataset}/${tag}` }, keepRoot: true }),
      containerd: why ? { skip: why } : { dir: path.join(mnt, 'containerd') },
      teardown: () => pool.cleanup(),
    };
  } catch (e) {
    await pool.cleanup().catch(() => undefined);
    throw e;
  }
}

/**
 * containerd's overlayfs snapshotter puts upper and work dirs below its root: try one overlay mount with them on
 * `dir`. Returns why the kernel refused (with what it logged), or undefined when the mount worked.
 */
async function overlayUpperRefused(dir: string): Promise<string | undefined> {
  const p = path.join(dir, '.overlay-probe');
  const [lower, upper, work, merged] = ['lower', 'upper', 'work', 'merged'].map((n) => path.join(p, n)) as [string, string, string, string];
  for (const d of [lower, upper, work, merged]) fs.mkdirSync(d, { recursive: true });
  const before = await kernelLog();
  try {
    await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, merged]);
    await run('umount', [merged]);
    return undefined;
  } catch (e) {
    const seen = new Set(before);
    // Lines carry their timestamps, so a message repeated from an earlier probe still counts as new.
    const said = (await kernelLog())
      .filter((l) => !seen.has(l) && /overlay/i.test(l))
      .map((l) => l.replace(/^\[[^\]]*\]\s*(overlayfs:\s*)?/, '').replace(/\.$/, ''));
    const msg = (e as Error).message.split('\n').pop()!.replace(/^.*?: /, '');
    return `the kernel refuses an overlayfs upper dir on zfs-fuse (FUSE): overlayfs says ${said.length ? said.join('; ') : msg}`;
  } finally {
    fs.rmSync(p, { recursive: true, force: true });
  }
}

async function kernelLog(): Promise<string[]> {
  try {
    return (await run('dmesg', [])).stdout.split('\n').filter(Boolean);
  } catch {
    return [];
  }
}
