/**
 * The bare filesystem operations each snapshot operation needs at least, measured on the filesystem holding the
 * daemon's root in the same run: the floor strata's figures are compared with.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sample, usSince } from './stats';

export interface BareResults {
  /** stat(2) of a directory: what a Stat could cost if metadata were a file per snapshot. */
  statDir: number[];
  /**
   * mkdir of a snapshot dir with its fs/ subdir, a rename, and one 4 KiB write + fdatasync: the directory work of
   * Prepare+Commit and the one sync a Commit must pay to be durable (containerd's bolt syncs each Commit too).
   */
  mkdirRename: number[];
  /** readdir of a directory holding 100 entries: List(100) if snapshots were directories. */
  readdir100: number[];
  /** rm -rf of a tree of 2000 files: what Remove would cost if it deleted inline. */
  rmTree2000: number[];
  /** lstat of every entry of a 100k-file tree: what Usage costs where no quota accounting answers it. */
  walk100k: number[];
}

export interface BareCounts {
  stat: number;
  mkdirRename: number;
  readdir: number;
  rmTree: number;
  walk: number;
}

/** Bytes and inodes of a tree by lstat-ing every entry (du's way). */
function walk(dir: string): { bytes: number; inodes: number } {
  let bytes = 0;
  let inodes = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const st = fs.lstatSync(p);
      bytes += st.blocks * 512;
      inodes++;
      if (e.isDirectory()) stack.push(p);
    }
  }
  return { bytes, inodes };
}

/** 2000 small files in 20 directories, like a small image layer. */
export function fillTree(dir: string, files = 2000, perDir = 100, bytes = 512): void {
  const payload = Buffer.alloc(bytes, 0x61);
  for (let i = 0; i < files; i++) {
    const d = path.join(dir, `d${Math.floor(i / perDir)}`);
    if (i % perDir === 0) fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, `f${i}`), payload);
  }
}

export async function measureBare(scratch: string, n: BareCounts): Promise<BareResults> {
  fs.mkdirSync(scratch, { recursive: true });
  try {
    const statTarget = path.join(scratch, 'stat-target');
    fs.mkdirSync(statTarget);
    const statDir = await sample(n.stat, 200, () => {
      const t0 = process.hrtime.bigint();
      fs.statSync(statTarget);
      return usSince(t0);
    });

    const work = path.join(scratch, 'mk');
    fs.mkdirSync(work);
    const journal = fs.openSync(path.join(scratch, 'journal'), 'w');
    const page = Buffer.alloc(4096, 1);
    const mkdirRename = await sample(n.mkdirRename, 20, (i) => {
      const a = path.join(work, `a${i}`);
      const t0 = process.hrtime.bigint();
      fs.mkdirSync(a, { mode: 0o755 });
      fs.mkdirSync(path.join(a, 'fs'), { mode: 0o755 });
      fs.renameSync(a, path.join(work, `b${i}`));
      fs.writeSync(journal, page, 0, page.length, (i & 15) * 4096);
      fs.fdatasyncSync(journal);
      return usSince(t0);
    });
    fs.closeSync(journal);
    fs.rmSync(work, { recursive: true, force: true });

    const list = path.join(scratch, 'list');
    fs.mkdirSync(list);
    for (let i = 0; i < 100; i++) fs.mkdirSync(path.join(list, String(i + 1)));
    const readdir100 = await sample(n.readdir, 50, () => {
      const t0 = process.hrtime.bigint();
      fs.readdirSync(list, { withFileTypes: true });
      return usSince(t0);
    });

    const rmTree2000 = await sample(n.rmTree, 1, (i) => {
      const t = path.join(scratch, `tree${i}`);
      fillTree(t);
      const t0 = process.hrtime.bigint();
      fs.rmSync(t, { recursive: true, force: true });
      return usSince(t0);
    });
    const big = path.join(scratch, 'walk');
    fillTree(big, 100_000, 1000, 16);
    const walk100k = await sample(n.walk, 1, () => {
      const t0 = process.hrtime.bigint();
      walk(big);
      return usSince(t0);
    });
    fs.rmSync(big, { recursive: true, force: true });
    return { statDir, mkdirRename, readdir100, rmTree2000, walk100k };
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}
