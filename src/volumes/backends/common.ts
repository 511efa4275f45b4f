/** Small filesystem facts the backends share. */
import * as fs from 'node:fs';

/** True when a directory is a mountpoint, from /proc/self/mountinfo (exact path match, octal escapes decoded). */
export function isMountpoint(dir: string): boolean {
  const text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    const mp = f[4].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (mp === dir) return true;
  }
  return false;
}

/** Removes a directory tree; a missing one is already removed. */
export async function removeTree(dir: string): Promise<void> {
  await fs.promises.rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.promises.lstat(p);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}
