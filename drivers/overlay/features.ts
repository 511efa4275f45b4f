/**
 * What overlayfs can do here, found by trying it in the root itself: overlay must be registered, the root's
 * filesystem must work as an upper layer (a real test mount: whiteouts hidden in readdir needs d_type, a write
 * lands in the upper), `userxattr` is needed outside the initial user namespace (trusted.* is then out of
 * reach), and the kernel may accept `lowerdir+=` (6.8+).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../../native';
import { errnoCode } from '../../src/core/errors';
import { unmountAll } from '../../src/core/mount';
import { fsTypeName } from '../native/dirstore';

export interface OverlayFeatures {
  /** Mount with userxattr: overlay's own xattrs live in user.overlay.* (unprivileged / user-namespace case). */
  userxattr: boolean;
  /** The kernel has the inodes index feature, so mounts say index=off (as containerd does: layers are shared). */
  indexOff: boolean;
  /** The kernel accepts lowerdir+= (Linux 6.8+). */
  lowerdirPlus: boolean;
  /** Filesystem holding the root. */
  backingFs: string;
}

export type OverlayProbe = { ok: true; features: OverlayFeatures } | { ok: false; reason: string };

function overlayRegistered(): boolean {
  try {
    return /\toverlay$/m.test(fs.readFileSync('/proc/filesystems', 'utf8'));
  } catch {
    return false;
  }
}

/** Outside the initial user namespace the uid map is partial, and trusted.* xattrs are refused. */
function inInitialUserNamespace(): boolean {
  try {
    const map = fs.readFileSync('/proc/self/uid_map', 'utf8').trim().split(/\s+/);
    return map.length === 3 && map[0] === '0' && map[1] === '0' && map[2] === '4294967295';
  } catch {
    return true;
  }
}

/** Filesystems that cannot hold an overlay upper layer (no whiteouts / xattrs / d_type or stacking limits). */
const BAD_UPPER = new Set(['overlay', 'fuse', 'zfs']);

export async function probeOverlay(root: string): Promise<OverlayProbe> {
  if (!overlayRegistered()) return { ok: false, reason: 'the kernel has no overlay filesystem (not in /proc/filesystems; load the "overlay" module)' };
  try {
    native();
  } catch (e) {
    return { ok: false, reason: e instanceof Error ? e.message : String(e) };
  }
  const tmp = path.join(root, 'tmp');
  try {
    fs.mkdirSync(tmp, { recursive: true, mode: 0o700 });
  } catch (e) {
    return { ok: false, reason: `cannot create ${tmp}: ${(e as Error).message}` };
  }
  const backingFs = fsTypeName(fs.statfsSync(root).type);
  if (BAD_UPPER.has(backingFs)) {
    return { ok: false, reason: `${root} is on ${backingFs}, which overlayfs cannot use as an upper layer; use the native driver or move the root` };
  }
  if (/[,:]/.test(root)) return { ok: false, reason: `the root path ${root} contains ',' or ':', which overlay mount options cannot carry` };

  const userxattr = !inInitialUserNamespace();
  const indexOff = fs.existsSync('/sys/module/overlay/parameters/index');
  const dir = fs.mkdtempSync(path.join(tmp, 'probe-'));
  const d = (n: string): string => path.join(dir, n);
  try {
    for (const n of ['l1', 'l2', 'u', 'w', 'm']) fs.mkdirSync(d(n));
    fs.writeFileSync(d('l1/a'), 'a');
    fs.writeFileSync(d('l1/b'), 'b');
    // A whiteout over l1/a: hidden only if the upper's readdir reports entry types (d_type).
    native().mknodat(-100, d('u/a'), 0o20000, 0, 0);
    const opts = [`lowerdir=${d('l2')}:${d('l1')}`, `upperdir=${d('u')}`, `workdir=${d('w')}`];
    if (userxattr) opts.push('userxattr');
    if (indexOff) opts.push('index=off');
    try {
      native().mount('overlay', d('m'), 'overlay', 0, opts.join(','));
    } catch (e) {
      return { ok: false, reason: `a test overlay mount in ${root} (${backingFs}) failed: ${errnoCode(e) ?? (e as Error).message}` };
    }
    try {
      const names = fs.readdirSync(d('m')).sort();
      if (names.join(',') !== 'b') {
        return { ok: false, reason: `${root} (${backingFs}) does not support d_type: overlay shows whiteouts as files (saw ${names.join(',')})` };
      }
      fs.writeFileSync(d('m/c'), 'c');
      if (!fs.existsSync(d('u/c'))) return { ok: false, reason: `writes to a test overlay in ${root} did not reach the upper layer` };
    } finally {
      await unmountAll(d('m'));
    }
    let lowerdirPlus = false;
    try {
      native().mount('overlay', d('m'), 'overlay', 0, [`lowerdir+=${d('l1')}`, `lowerdir+=${d('l2')}`, ...(userxattr ? ['userxattr'] : [])].join(','));
      lowerdirPlus = true;
      await unmountAll(d('m'));
    } catch {
      lowerdirPlus = false;
    }
    return { ok: true, features: { userxattr, indexOff, lowerdirPlus, backingFs } };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
