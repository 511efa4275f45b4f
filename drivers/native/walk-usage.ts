/**
 * Disk usage of a tree by walking it, for filesystems without project quotas: allocated bytes (st_blocks * 512,
 * so sparse files and small files count what they really take) and inodes, the directory itself included,
 * each hardlinked inode once (as du and containerd's fs.DiskUsage count).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Usage } from '../../src/core/types';

/** Entries between yields to the event loop: a 100k-file walk must not stall the daemon's other calls. */
const BATCH = 2000;

export async function walkUsage(dir: string): Promise<Usage> {
  const seen = new Set<bigint>();
  let size = 0;
  let inodes = 0;
  const count = (st: fs.BigIntStats): void => {
    if (st.nlink > 1n) {
      if (seen.has(st.ino)) return;
      seen.add(st.ino);
    }
    size += Number(st.blocks) * 512;
    inodes++;
  };
  let root: fs.BigIntStats;
  try {
    root = fs.lstatSync(dir, { bigint: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { size: 0, inodes: 0 };
    throw e;
  }
  count(root);
  if (!root.isDirectory()) return { size, inodes };
  const stack: string[] = [dir];
  let sinceYield = 0;
  while (stack.length > 0) {
    const d = stack.pop()!;
    let names: string[];
    try {
      names = fs.readdirSync(d);
    } catch (e) {
      // Removed under us (an active snapshot is live): what is gone uses nothing.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    for (const name of names) {
      const p = path.join(d, name);
      let st: fs.BigIntStats;
      try {
        st = fs.lstatSync(p, { bigint: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e;
      }
      count(st);
      if (st.isDirectory()) stack.push(p);
      if (++sinceYield >= BATCH) {
        sinceYield = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
  }
  return { size, inodes };
}
