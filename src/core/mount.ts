/**
 * Performs a driver's `Mount[]` the way containerd does (mount.All): every mount in order on the same target,
 * fstab-style options split into mount(2) flags and filesystem data, a read-only bind made by a second remount,
 * and an overlay whose data would not fit in one page compacted to paths relative to the lowers' common parent
 * (mount(2) copies at most one page of data; containerd compacts the same way, so testing through this helper
 * tests what containerd will really do with a driver's options). Used by drivers' openTree, `snapctl mount`
 * and tests.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MNT, MS, native } from '../../native';
import { errnoCode, internal } from './errors';
import type { Mount } from './types';

/** mount(2) flags the native module does not name. */
const MSX = {
  SYNCHRONOUS: 16,
  MANDLOCK: 64,
  DIRSYNC: 128,
  NOATIME: 1024,
  NODIRATIME: 2048,
  UNBINDABLE: 1 << 17,
  SLAVE: 1 << 19,
  SHARED: 1 << 20,
  RELATIME: 1 << 21,
  STRICTATIME: 1 << 24,
} as const;

const PROPAGATION = MS.PRIVATE | MSX.SLAVE | MSX.SHARED | MSX.UNBINDABLE;

/** The size mount(2) accepts for data. 4096 is the smallest page Linux runs on, so it is safe everywhere. */
export const MOUNT_DATA_LIMIT = 4096;
/** containerd compacts overlay lowerdirs once the options reach this size (a page less 512 bytes of slack). */
const COMPACT_THRESHOLD = MOUNT_DATA_LIMIT - 512;

/** [set?, flag]: options that set or clear a mount(2) flag; anything else is filesystem data. */
const FLAG_OPTIONS: Record<string, [boolean, number]> = {
  async: [false, MSX.SYNCHRONOUS],
  atime: [false, MSX.NOATIME],
  bind: [true, MS.BIND],
  defaults: [true, 0],
  dev: [false, MS.NODEV],
  diratime: [false, MSX.NODIRATIME],
  dirsync: [true, MSX.DIRSYNC],
  exec: [false, MS.NOEXEC],
  mand: [true, MSX.MANDLOCK],
  noatime: [true, MSX.NOATIME],
  nodev: [true, MS.NODEV],
  nodiratime: [true, MSX.NODIRATIME],
  noexec: [true, MS.NOEXEC],
  nomand: [false, MSX.MANDLOCK],
  norelatime: [false, MSX.RELATIME],
  nostrictatime: [false, MSX.STRICTATIME],
  nosuid: [true, MS.NOSUID],
  rbind: [true, MS.BIND | MS.REC],
  relatime: [true, MSX.RELATIME],
  remount: [true, MS.REMOUNT],
  ro: [true, MS.RDONLY],
  rw: [false, MS.RDONLY],
  strictatime: [true, MSX.STRICTATIME],
  suid: [false, MS.NOSUID],
  sync: [true, MSX.SYNCHRONOUS],
  private: [true, MS.PRIVATE],
  rprivate: [true, MS.PRIVATE | MS.REC],
  shared: [true, MSX.SHARED],
  rshared: [true, MSX.SHARED | MS.REC],
  slave: [true, MSX.SLAVE],
  rslave: [true, MSX.SLAVE | MS.REC],
  unbindable: [true, MSX.UNBINDABLE],
  runbindable: [true, MSX.UNBINDABLE | MS.REC],
};

export interface ParsedOptions {
  flags: number;
  /** Filesystem-specific options, in order (joined with ',' for mount(2)). */
  data: string[];
}

export function parseMountOptions(options: readonly string[]): ParsedOptions {
  let flags = 0;
  const data: string[] = [];
  for (const o of options) {
    const f = FLAG_OPTIONS[o];
    if (f === undefined) data.push(o);
    else if (f[0]) flags |= f[1];
    else flags &= ~f[1];
  }
  return { flags, data };
}

/** Total size of the overlay options, measured as containerd measures it (sum of the option strings). */
function optionsSize(options: readonly string[]): number {
  return options.reduce((n, o) => n + Buffer.byteLength(o), 0);
}

export interface Compacted {
  /** Directory to resolve the relative lowerdirs from, or '' when nothing was compacted. */
  chdir: string;
  options: string[];
}

/**
 * The lowerdir list rewritten relative to the lowers' common parent directory, as containerd does for long
 * overlay options. A common parent that is '/' gains nothing and is left alone.
 */
export function compactLowerdir(options: readonly string[]): Compacted {
  const idx = options.findIndex((o) => o.startsWith('lowerdir='));
  if (idx < 0) return { chdir: '', options: [...options] };
  const dirs = options[idx]!.slice('lowerdir='.length).split(':');
  if (dirs.length < 2) return { chdir: '', options: [...options] };
  let common = dirs[0]!;
  for (const d of dirs) {
    let i = 0;
    while (i < common.length && i < d.length && common[i] === d[i]) i++;
    common = common.slice(0, i);
  }
  // Back up to a directory boundary: ids are digits, so "snapshots/1" must not become the common part of 12, 13.
  const cut = common.lastIndexOf('/');
  const parent = cut > 0 ? common.slice(0, cut + 1) : '';
  if (parent === '' || parent === '/') return { chdir: '', options: [...options] };
  if (dirs.some((d) => d.length <= parent.length)) return { chdir: '', options: [...options] };
  const rest = options.filter((_, i) => i !== idx);
  rest.push('lowerdir=' + dirs.map((d) => d.slice(parent.length)).join(':'));
  return { chdir: parent, options: rest };
}

/** The data string mount(2) will receive for m, and the directory it is resolved from. */
export function mountData(m: Mount): { flags: number; data: string; chdir: string } {
  let options = [...m.options];
  let chdir = '';
  if (m.type === 'overlay' && optionsSize(options) >= COMPACT_THRESHOLD) {
    ({ chdir, options } = compactLowerdir(options));
  }
  const { flags, data } = parseMountOptions(options);
  return { flags, data: data.join(','), chdir };
}

function mountOne(m: Mount, target: string): void {
  const n = native();
  const { flags, data, chdir } = mountData(m);
  if (Buffer.byteLength(data) >= MOUNT_DATA_LIMIT) {
    throw internal(`mount data for ${m.type} at ${target} is ${Buffer.byteLength(data)} bytes; mount(2) takes < ${MOUNT_DATA_LIMIT}`);
  }
  const baseFlags = flags & ~PROPAGATION;
  if ((flags & MS.REMOUNT) === 0 || data !== '') {
    if (chdir === '') {
      n.mount(m.source, target, m.type, baseFlags, data);
    } else {
      // Relative lowerdirs resolve from the cwd. mount() is synchronous, so no other JS runs while the cwd is
      // moved; strata passes absolute paths everywhere else, so libuv's threads are unaffected.
      const cwd = process.cwd();
      process.chdir(chdir);
      try {
        n.mount(m.source, path.resolve(cwd, target), m.type, baseFlags, data);
      } finally {
        process.chdir(cwd);
      }
    }
  }
  if ((flags & PROPAGATION) !== 0) n.mount('', target, '', flags & (PROPAGATION | MS.REC), '');
  // A bind ignores MS_RDONLY on the first call; read-only takes a remount of the new bind.
  if ((baseFlags & (MS.BIND | MS.RDONLY)) === (MS.BIND | MS.RDONLY) && (baseFlags & MS.REMOUNT) === 0) {
    n.mount('', target, '', baseFlags | MS.REMOUNT, '');
  }
}

/** Mounts every entry on target in order; on failure the ones already made are undone. */
export async function mountAll(mounts: readonly Mount[], target: string): Promise<void> {
  let done = 0;
  try {
    for (const m of mounts) {
      mountOne(m, target);
      done++;
    }
  } catch (e) {
    for (; done > 0; done--) await unmountOnce(target);
    throw e;
  }
}

/** Unmounts the top mount at target; false when nothing is mounted there. Retries EBUSY, then detaches. */
async function unmountOnce(target: string): Promise<boolean> {
  const n = native();
  for (let attempt = 0; ; attempt++) {
    try {
      n.umount2(target, attempt < 50 ? 0 : MNT.DETACH);
      return true;
    } catch (e) {
      const code = errnoCode(e);
      if (code === 'EINVAL' || code === 'ENOENT') return false;
      if (code !== 'EBUSY' || attempt >= 50) throw e;
      // A process that just exited or a racing stat can hold the mount for a moment.
      await sleep(20);
    }
  }
}

/** Unmounts everything stacked at target (like containerd's UnmountAll). Idempotent. */
export async function unmountAll(target: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (!(await unmountOnce(target))) return;
  }
  throw internal(`${target} still mounted after 1000 unmounts`);
}

/**
 * Mounts the given mounts on a fresh directory below tmpRoot; release() unmounts and removes it. What openTree
 * and tests use to look at a snapshot without knowing how its driver stacks it.
 */
export async function mountTemp(mounts: readonly Mount[], tmpRoot: string, prefix = 'mnt-'): Promise<{ dir: string; release(): Promise<void> }> {
  fs.mkdirSync(tmpRoot, { recursive: true, mode: 0o700 });
  const dir = fs.mkdtempSync(path.join(tmpRoot, prefix));
  try {
    await mountAll(mounts, dir);
  } catch (e) {
    fs.rmdirSync(dir);
    throw e;
  }
  let released = false;
  return {
    dir,
    async release(): Promise<void> {
      if (released) return;
      await unmountAll(dir);
      fs.rmdirSync(dir);
      released = true;
    },
  };
}
