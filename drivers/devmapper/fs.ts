/**
 * The filesystem on a thin device: making it, growing it, mounting it for a moment, and counting its used
 * inodes without a walk.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errnoCode, internal } from '../../src/core/errors';
import { MS, native } from '../../native';
import { unmountAll } from '../../src/core/mount';
import { run } from './exec';

export type FsType = 'ext4' | 'xfs';

/**
 * Options for every mount of a device. Thin snapshots carry their origin's filesystem UUID, and XFS refuses a
 * second mount of a UUID it already has mounted, so xfs always mounts with nouuid.
 */
export function fsMountOptions(t: FsType): string[] {
  return t === 'xfs' ? ['nouuid'] : [];
}

/**
 * mkfs without discards (a fresh thin device maps nothing, so discarding is wasted time) and, for ext4, with the
 * inode tables and journal written now: lazy init would keep writing in the background after the layer is
 * committed and turn every snapshot of it into a copy of those blocks.
 */
export async function mkfs(t: FsType, dev: string): Promise<void> {
  if (t === 'ext4') await run('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard,lazy_itable_init=0,lazy_journal_init=0', dev]);
  else await run('mkfs.xfs', ['-q', '-f', '-K', dev]);
}

/** Mounts dev on a fresh directory below tmpRoot, runs fn, unmounts and removes the directory whatever happens. */
export async function withMountedDevice<T>(t: FsType, dev: string, tmpRoot: string, readonly: boolean, fn: (dir: string) => Promise<T> | T): Promise<T> {
  fs.mkdirSync(tmpRoot, { recursive: true, mode: 0o700 });
  const dir = fs.mkdtempSync(path.join(tmpRoot, 'dm-'));
  try {
    native().mount(dev, dir, t, readonly ? MS.RDONLY : 0, fsMountOptions(t).join(','));
    try {
      return await fn(dir);
    } finally {
      await unmountAll(dir);
    }
  } finally {
    fs.rmdirSync(dir);
  }
}

/**
 * A new snapshot's root is an empty 0755 directory (containerd's contract). mkfs.ext4 adds lost+found, which
 * would show up in every image's tree, so it goes; e2fsck recreates it if a repair ever needs it.
 */
export async function tidyNewFs(t: FsType, dev: string, tmpRoot: string): Promise<void> {
  await withMountedDevice(t, dev, tmpRoot, false, (dir) => {
    if (t === 'ext4') fs.rmdirSync(path.join(dir, 'lost+found'));
    fs.chmodSync(dir, 0o755);
  });
}

/** Grows the filesystem to the device's new size (a snapshot given a larger max-size than its parent's). */
export async function growFs(t: FsType, dev: string, tmpRoot: string): Promise<void> {
  await withMountedDevice(t, dev, tmpRoot, false, async (dir) => {
    if (t === 'ext4') await run('resize2fs', [dev]);
    else await run('xfs_growfs', [dir]);
  });
}

/** The filesystem's size in bytes, from its superblock. */
export async function fsSizeBytes(t: FsType, dev: string): Promise<number> {
  if (t === 'ext4') {
    const sb = readAt(dev, 1024, 1024);
    const lo = sb.readUInt32LE(4);
    const hi = sb.readUInt32LE(0x150);
    const logBlock = sb.readUInt32LE(24);
    const incompat = sb.readUInt32LE(0x60);
    const blocks = lo + ((incompat & 0x80) !== 0 ? hi * 2 ** 32 : 0);
    return blocks * (1024 << logBlock);
  }
  const out = await run('xfs_db', ['-r', '-c', 'sb 0', '-c', 'p dblocks blocksize', dev]);
  const v = fields(out);
  return (v['dblocks'] ?? 0) * (v['blocksize'] ?? 0);
}

/** The mountpoint of dev (by device number) in this mount namespace, or undefined. One read of mountinfo. */
export function mountpointOf(dev: string): string | undefined {
  let rdev: bigint;
  try {
    rdev = fs.statSync(dev, { bigint: true }).rdev;
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw e;
  }
  const want = `${Number((rdev >> 8n) & 0xfffn) | Number((rdev >> 32n) & ~0xfffn)}:${Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn))}`;
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[2] === want && f[3] === '/') return (f[4] ?? '').replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  }
  return undefined;
}

/**
 * Used inodes of the filesystem on dev: statfs where it is mounted, else the superblock's counts (both ext4 and
 * XFS write exact free counts to the superblock at unmount). O(1) either way.
 */
export async function usedInodes(t: FsType, dev: string): Promise<number> {
  const mp = mountpointOf(dev);
  if (mp !== undefined) {
    const st = fs.statfsSync(mp);
    return st.files - st.ffree;
  }
  if (t === 'ext4') {
    // ext4 writes its superblock through the block device's page cache, so a buffered read is coherent.
    const sb = readAt(dev, 1024, 1024);
    if (sb.readUInt16LE(56) !== 0xef53) throw internal(`devmapper: ${dev} holds no ext4 superblock`);
    return sb.readUInt32LE(0) - sb.readUInt32LE(16);
  }
  // XFS writes through its own buffer cache, past the block device's page cache: xfs_db reads the disk directly.
  const v = fields(await run('xfs_db', ['-r', '-c', 'sb 0', '-c', 'p icount ifree', dev]));
  return (v['icount'] ?? 0) - (v['ifree'] ?? 0);
}

function fields(out: string): Record<string, number> {
  const v: Record<string, number> = {};
  for (const line of out.split('\n')) {
    const m = /^(\w+) = (\d+)/.exec(line.trim());
    if (m) v[m[1]!] = Number(m[2]);
  }
  return v;
}

function readAt(dev: string, offset: number, length: number): Buffer {
  const fd = fs.openSync(dev, 'r');
  try {
    const buf = Buffer.alloc(length);
    fs.readSync(fd, buf, 0, length, offset);
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}
