/** Reading the mount table (/proc/self/mountinfo). */
import * as fs from 'node:fs';

export interface MountEntry {
  major: number;
  minor: number;
  mountpoint: string;
  fsType: string;
  source: string;
  mountOptions: string[];
  superOptions: string[];
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    // id parent major:minor root mountpoint options [optional fields...] - fstype source superoptions
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    if (left.length < 6 || right.length < 3) continue;
    const [major, minor] = left[2].split(':').map(Number);
    out.push({
      major,
      minor,
      mountpoint: unescape(left[4]),
      mountOptions: left[5].split(','),
      fsType: right[0],
      source: unescape(right[1]),
      superOptions: right[2].split(','),
    });
  }
  return out;
}

/**
 * Is something mounted exactly at dir? Read from the mount table rather than by stat-ing dir: a stat of a FUSE
 * mountpoint (zfs-fuse) blocks for as long as its daemon does not answer, and it would block the whole event
 * loop with it. The table is read synchronously; it is a small in-kernel file.
 */
export function isMountPoint(dir: string): boolean {
  return parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8')).some((m) => m.mountpoint === dir);
}
