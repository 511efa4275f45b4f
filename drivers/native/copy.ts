/**
 * A faithful copy of a snapshot tree for the native driver: types, modes (setuid/sticky included), owners,
 * xattrs of every namespace we can read, hardlink groups (within the copy), devices, fifos, sockets, symlinks
 * and nanosecond times. File data is reflinked (FICLONE) when the filesystem can share extents, copied
 * otherwise.
 *
 * Order of operations per entry matters: chown clears setuid bits and security.capability, so the owner comes
 * first, then the mode, then xattrs; times are last (a directory's after its children, since creating them
 * touches its mtime).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AT, native } from '../../native';

export interface CopyOptions {
  /** Use FICLONE (reflink) for file data; a file that cannot be cloned is copied instead. */
  reflink: boolean;
}

export interface CopyStats {
  entries: number;
  /** Files whose data was shared by FICLONE rather than copied. */
  reflinked: number;
  hardlinks: number;
}

const BATCH = 1000;

type Frame = { src: string; dst: string; finish?: fs.BigIntStats };

export async function copyTree(src: string, dst: string, opts: CopyOptions): Promise<CopyStats> {
  const n = native();
  const stats: CopyStats = { entries: 0, reflinked: 0, hardlinks: 0 };
  // Hardlinked inodes already copied: source dev:ino → the copy's path, so later names link to it.
  const linked = new Map<string, string>();
  let reflink = opts.reflink;

  const attrs = (srcPath: string, dstPath: string, st: fs.BigIntStats): void => {
    fs.lchownSync(dstPath, Number(st.uid), Number(st.gid));
    if (!st.isSymbolicLink()) fs.chmodSync(dstPath, Number(st.mode & 0o7777n));
    for (const name of n.llistxattr(srcPath)) {
      const value = n.lgetxattr(srcPath, name);
      if (value !== null) n.lsetxattr(dstPath, name, value, 0);
    }
    n.utimensat(
      AT.FDCWD,
      dstPath,
      Number(st.atimeNs / 1_000_000_000n),
      Number(st.atimeNs % 1_000_000_000n),
      Number(st.mtimeNs / 1_000_000_000n),
      Number(st.mtimeNs % 1_000_000_000n),
      AT.SYMLINK_NOFOLLOW,
    );
  };

  const copyData = (s: string, d: string): void => {
    if (reflink) {
      try {
        fs.copyFileSync(s, d, fs.constants.COPYFILE_FICLONE_FORCE);
        stats.reflinked++;
        return;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // A file the filesystem will not clone (e.g. a swapfile, or inline extents some kernels refuse) is
        // copied; anything else is a real failure.
        if (code !== 'EOPNOTSUPP' && code !== 'ENOTSUP' && code !== 'EINVAL' && code !== 'EXDEV' && code !== 'ENOSYS') throw e;
        if (code === 'ENOSYS' || code === 'EXDEV') reflink = false;
        try {
          fs.unlinkSync(d);
        } catch {
          /* not created */
        }
      }
    }
    fs.copyFileSync(s, d);
  };

  const copyFile = (s: string, d: string, st: fs.BigIntStats): void => {
    // A file with fewer blocks than its size has holes; copy_file_range/sendfile would fill them in.
    if (!reflink && st.blocks * 512n < st.size) copySparse(s, d, Number(st.size));
    else copyData(s, d);
  };

  const stack: Frame[] = [{ src, dst }];
  let sinceYield = 0;
  while (stack.length > 0) {
    const f = stack.pop()!;
    if (f.finish) {
      attrs(f.src, f.dst, f.finish);
      continue;
    }
    const st = fs.lstatSync(f.src, { bigint: true });
    stats.entries++;
    if (st.isDirectory()) {
      fs.mkdirSync(f.dst, { mode: 0o700 });
      stack.push({ src: f.src, dst: f.dst, finish: st });
      for (const name of fs.readdirSync(f.src)) stack.push({ src: path.join(f.src, name), dst: path.join(f.dst, name) });
    } else {
      const key = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1n ? linked.get(key) : undefined;
      if (first !== undefined) {
        fs.linkSync(first, f.dst);
        stats.hardlinks++;
      } else {
        if (st.isFile()) copyFile(f.src, f.dst, st);
        else if (st.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(f.src), f.dst);
        else {
          // Devices, fifos and sockets are recreated as inodes (a socket inode is just a name; no listener).
          const rdev = st.rdev;
          const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & 0xfffff000n));
          const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & 0xffffff00n));
          n.mknodat(AT.FDCWD, f.dst, Number(st.mode), major, minor);
        }
        attrs(f.src, f.dst, st);
        if (st.nlink > 1n) linked.set(key, f.dst);
      }
    }
    if (++sinceYield >= BATCH) {
      sinceYield = 0;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
  return stats;
}

const ZERO = Buffer.alloc(64 * 1024);

/** Copies a sparse file leaving zero-filled 64 KiB chunks as holes (cp --sparse=auto's rule). */
function copySparse(s: string, d: string, size: number): void {
  const src = fs.openSync(s, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const dst = fs.openSync(d, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    try {
      const buf = Buffer.allocUnsafe(ZERO.length);
      for (let pos = 0; pos < size; ) {
        const n = fs.readSync(src, buf, 0, buf.length, pos);
        if (n === 0) break;
        const chunk = buf.subarray(0, n);
        if (!chunk.equals(ZERO.subarray(0, n))) fs.writeSync(dst, chunk, 0, n, pos);
        pos += n;
      }
      fs.ftruncateSync(dst, size);
    } finally {
      fs.closeSync(dst);
    }
  } finally {
    fs.closeSync(src);
  }
}

/** Whether files under dir can be reflinked: one FICLONE attempt between two scratch files. */
export function probeReflink(dir: string): { ok: boolean; reason: string } {
  const a = path.join(dir, `.reflink-probe-${process.pid}-a`);
  const b = path.join(dir, `.reflink-probe-${process.pid}-b`);
  try {
    fs.writeFileSync(a, Buffer.alloc(8192, 1));
    fs.copyFileSync(a, b, fs.constants.COPYFILE_FICLONE_FORCE);
    return { ok: true, reason: 'FICLONE works' };
  } catch (e) {
    return { ok: false, reason: `FICLONE unsupported (${(e as NodeJS.ErrnoException).code ?? String(e)})` };
  } finally {
    fs.rmSync(a, { force: true });
    fs.rmSync(b, { force: true });
  }
}
