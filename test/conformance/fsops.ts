/**
 * Filesystem changes as values, so one list of operations can be applied both to a mounted snapshot and to a
 * plain directory whose tree is the expectation. Modes are set with chmod after creation: umask must not
 * decide what a test expects.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../../native/index';

export type FsOp = { describe: string; apply(root: string): void };

const at = (root: string, p: string): string => path.join(root, p);

export const op = {
  file(p: string, content: string | Buffer, mode = 0o644): FsOp {
    return {
      describe: `file ${p}`,
      apply(root) {
        fs.writeFileSync(at(root, p), content);
        fs.chmodSync(at(root, p), mode);
      },
    };
  },
  /** Appends to an existing file (a copy-up on overlay). */
  append(p: string, content: string): FsOp {
    return { describe: `append ${p}`, apply: (root) => fs.appendFileSync(at(root, p), content) };
  },
  dir(p: string, mode = 0o755): FsOp {
    return {
      describe: `dir ${p}`,
      apply(root) {
        fs.mkdirSync(at(root, p));
        fs.chmodSync(at(root, p), mode);
      },
    };
  },
  rm(p: string): FsOp {
    return { describe: `rm ${p}`, apply: (root) => fs.rmSync(at(root, p), { recursive: true }) };
  },
  /** rename(2), falling back to copy + delete on EXDEV the way mv(1) does (overlay without redirect_dir). */
  rename(from: string, to: string): FsOp {
    return {
      describe: `rename ${from} ${to}`,
      apply(root) {
        try {
          fs.renameSync(at(root, from), at(root, to));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
          copyPreserving(at(root, from), at(root, to));
          fs.rmSync(at(root, from), { recursive: true });
        }
      },
    };
  },
  chown(p: string, uid: number, gid: number): FsOp {
    return { describe: `chown ${p}`, apply: (root) => fs.lchownSync(at(root, p), uid, gid) };
  },
  chmod(p: string, mode: number): FsOp {
    return { describe: `chmod ${p}`, apply: (root) => fs.chmodSync(at(root, p), mode) };
  },
  symlink(target: string, p: string): FsOp {
    return { describe: `symlink ${p}`, apply: (root) => fs.symlinkSync(target, at(root, p)) };
  },
  link(existing: string, p: string): FsOp {
    return { describe: `link ${p}`, apply: (root) => fs.linkSync(at(root, existing), at(root, p)) };
  },
  xattr(p: string, name: string, value: string): FsOp {
    return { describe: `xattr ${p} ${name}`, apply: (root) => native().lsetxattr(at(root, p), name, Buffer.from(value), 0) };
  },
};

/** cp -a for the kinds of entries tests create: mode, owner, symlinks, xattrs. */
function copyPreserving(src: string, dst: string): void {
  const st = fs.lstatSync(src);
  if (st.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(src), dst);
  else if (st.isDirectory()) {
    fs.mkdirSync(dst);
    for (const n of fs.readdirSync(src)) copyPreserving(path.join(src, n), path.join(dst, n));
  } else fs.copyFileSync(src, dst);
  fs.lchownSync(dst, st.uid, st.gid);
  if (!st.isSymbolicLink()) {
    fs.chmodSync(dst, st.mode & 0o7777);
    for (const name of native().llistxattr(src)) {
      const v = native().lgetxattr(src, name);
      if (v !== null && !name.startsWith('trusted.overlay.')) native().lsetxattr(dst, name, v, 0);
    }
  }
}

export function applyOps(root: string, ops: FsOp[]): void {
  for (const o of ops) {
    try {
      o.apply(root);
    } catch (e) {
      throw new Error(`applying "${o.describe}": ${(e as Error).message}`);
    }
  }
}
