/**
 * Usage by walking a tree, for volumes with no accounting (a plain directory without project quota). Counts
 * allocated blocks, not apparent sizes, and each hardlinked inode once, like `du`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export async function walkUsage(root: string): Promise<{ size: number; inodes: number }> {
  const seen = new Set<string>();
  let size = 0;
  let inodes = 0;
  const count = (st: fs.BigIntStats): void => {
    if (st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      if (seen.has(key)) return;
      seen.add(key);
    }
    size += Number(st.blocks) * 512;
    inodes++;
  };
  const rootStat = await fs.promises.lstat(root, { bigint: true });
  count(rootStat);
  const stack = [root];
  while (stack.length) {
    const dir = stack.pop() as string;
    let entries: fs.Dirent[];
    try {
      entries = await fs.promises.readdir(dir, { withFileTypes: true });
    } catch (e) {
      // A container may delete a directory while we walk; what is gone uses no space.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    for (const ent of entries) {
      const p = path.join(dir, ent.name);
      let st: fs.BigIntStats;
      try {
        st = await fs.promises.lstat(p, { bigint: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e;
      }
      count(st);
      // Do not descend into other filesystems mounted below the volume (its size is its own bytes).
      if (st.isDirectory() && st.dev === rootStat.dev) stack.push(p);
    }
  }
  return { size, inodes };
}
