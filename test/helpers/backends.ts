/**
 * Real loopback backends for driver tests: btrfs (quotas on), XFS with prjquota, ext4 with project quota, and a
 * ZFS pool on an image file through zfs-fuse. Every name carries `stratat-<pid>-<rand>` so that cleanupStale()
 * can tell leftovers of a killed run (pid gone) from the live backends of another engineer's concurrent run
 * (pid alive) and never touches the latter.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Name prefix of everything these helpers create. */
export const BACKEND_PREFIX = 'stratat';
/** Where image files and mountpoints live: on the real disk, not a tmpfs, so image size does not cost RAM. */
export const BACKEND_BASE = path.join(os.tmpdir(), 'strata-backends');

export interface LoopBackend {
  /** The mounted filesystem's root. */
  mountpoint: string;
  /** The loop device (project-quota drivers need it for quotactl). */
  device: string;
  image: string;
  cleanup(): Promise<void>;
}

export interface ZfsBackend {
  pool: string;
  /** A dataset inside the pool for the test to use as its parent (`<pool>/strata`). */
  dataset: string;
  image: string;
  cleanup(): Promise<void>;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a program with an argument array; rejects with its stderr in the message. */
export function run(file: string, args: readonly string[], timeoutMs = 120_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const e = new Error(`${file} ${args.join(' ')}: ${stderr.trim() || err.message}`);
        reject(Object.assign(e, { stderr, stdout }));
      } else resolve({ stdout, stderr });
    });
  });
}

async function has(program: string): Promise<boolean> {
  for (const dir of ['/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    try {
      await fs.promises.access(path.join(dir, program), fs.constants.X_OK);
      return true;
    } catch {
      /* try the next directory */
    }
  }
  return false;
}

/** Why a backend cannot be created here, or undefined when it can. Tests skip with this reason. */
export async function backendMissing(kind: 'btrfs' | 'xfs' | 'ext4' | 'zfs'): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root (loop devices and mounts)';
  const tools: Record<typeof kind, string[]> = {
    btrfs: ['mkfs.btrfs', 'btrfs', 'losetup'],
    xfs: ['mkfs.xfs', 'losetup'],
    ext4: ['mkfs.ext4', 'losetup'],
    zfs: ['zfs-fuse', 'zpool', 'zfs'],
  };
  for (const t of tools[kind]) if (!(await has(t))) return `${t} is not installed`;
  if (kind === 'zfs' && !fs.existsSync('/dev/fuse')) return '/dev/fuse is missing';
  return undefined;
}

/** A unique name carrying our pid, so stale detection can check liveness. */
export function uniqueName(tag: string): string {
  return `${BACKEND_PREFIX}-${process.pid}-${tag}-${randomBytes(3).toString('hex')}`;
}

const NAME_RE = new RegExp(`${BACKEND_PREFIX}[-_](\\d+)[-_]`);

function ownerAlive(name: string): boolean {
  const m = NAME_RE.exec(name);
  if (!m) return true; // not ours: treat as alive so we never touch it
  const pid = Number(m[1]);
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function makeImage(name: string, sizeMiB: number): Promise<{ dir: string; image: string; mnt: string }> {
  const dir = path.join(BACKEND_BASE, name);
  await fs.promises.mkdir(dir, { recursive: true });
  const image = path.join(dir, 'image');
  const fh = await fs.promises.open(image, 'w');
  try {
    await fh.truncate(sizeMiB * 1024 * 1024); // sparse: costs disk only as it fills
  } finally {
    await fh.close();
  }
  const mnt = path.join(dir, 'mnt');
  await fs.promises.mkdir(mnt);
  return { dir, image, mnt };
}

async function attachLoop(image: string): Promise<string> {
  const { stdout } = await run('losetup', ['--find', '--show', image]);
  return stdout.trim();
}

/** Unmount (lazily if busy), detach the loop device, delete the directory; each step tolerates "already gone". */
async function teardownLoop(dir: string, mnt: string, device: string | undefined): Promise<void> {
  const errors: string[] = [];
  if (isMounted(mnt)) {
    try {
      await run('umount', [mnt]);
    } catch {
      try {
        await run('umount', ['-l', mnt]);
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
  }
  if (device) {
    try {
      await run('losetup', ['-d', device]);
    } catch (e) {
      if (!/No such device|not found|ENXIO/i.test((e as Error).message)) errors.push((e as Error).message);
    }
  }
  await fs.promises.rm(dir, { recursive: true, force: true }).catch((e: Error) => errors.push(e.message));
  if (errors.length) throw new Error(`backend teardown of ${dir}: ${errors.join('; ')}`);
}

/** Mountpoints below (or equal to) a directory, deepest first, from /proc/self/mountinfo. */
export function mountsUnder(dir: string): string[] {
  const text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    // mountinfo escapes space, tab, newline and backslash as octal.
    const mp = f[4].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (mp === dir || mp.startsWith(dir.endsWith('/') ? dir : dir + '/')) out.push(mp);
  }
  return out.sort((a, b) => b.length - a.length);
}

function isMounted(dir: string): boolean {
  return mountsUnder(dir).includes(dir);
}

/** The kernel (or its config) cannot provide what was asked, e.g. quotas without CONFIG_QUOTA: tests skip. */
export class BackendUnsupported extends Error {
  override readonly name = 'BackendUnsupported';
}

async function loopBackend(
  tag: string,
  sizeMiB: number,
  mkfs: (device: string) => Promise<unknown>,
  mountOpts: string[],
  after?: (mnt: string) => Promise<unknown>,
  plainMkfs: (device: string) => Promise<unknown> = mkfs,
): Promise<LoopBackend> {
  const name = uniqueName(tag);
  const { dir, image, mnt } = await makeImage(name, sizeMiB);
  let device: string | undefined;
  try {
    device = await attachLoop(image);
    await mkfs(device);
    try {
      await run('mount', [...(mountOpts.length ? ['-o', mountOpts.join(',')] : []), device, mnt]);
    } catch (e) {
      if (mountOpts.length === 0) throw e;
      // Tell "the kernel has no quota support" (a filesystem without quota features mounts fine) from a
      // broken setup. ext4 with the quota feature does not mount at all on such a kernel, hence plainMkfs.
      await plainMkfs(device);
      await run('mount', [device, mnt]);
      await run('umount', [mnt]);
      throw new BackendUnsupported(`${tag}: this kernel refuses mount options ${mountOpts.join(',')} (built without quota support?)`);
    }
    if (after) await after(mnt);
  } catch (e) {
    await teardownLoop(dir, mnt, device).catch(() => undefined);
    throw e;
  }
  const dev = device;
  let done = false;
  return {
    mountpoint: mnt,
    device: dev,
    image,
    async cleanup() {
      if (done) return;
      done = true;
      // Drivers may leave bind mounts below mnt after a failed test: lift them first.
      for (const m of mountsUnder(mnt)) if (m !== mnt) await run('umount', ['-l', m]).catch(() => undefined);
      await teardownLoop(dir, mnt, dev);
    },
  };
}

/** A loop-mounted btrfs; quotas (qgroups) enabled unless quota is false. */
export function createBtrfs(opts: { sizeMiB?: number; quota?: boolean } = {}): Promise<LoopBackend> {
  // mkfs.btrfs refuses images below ~114 MiB with default profiles.
  return loopBackend(
    'btrfs',
    opts.sizeMiB ?? 512,
    (dev) => run('mkfs.btrfs', ['-q', '-f', dev]),
    [],
    opts.quota === false ? undefined : (mnt) => run('btrfs', ['quota', 'enable', mnt]),
  );
}

/**
 * A loop-mounted XFS with project quotas enforced (prjquota; quota: false mounts without). xfsprogs wants at
 * least 300 MiB. Rejects with BackendUnsupported when the kernel has no XFS quota support.
 */
export function createXfs(opts: { sizeMiB?: number; quota?: boolean } = {}): Promise<LoopBackend> {
  const quota = opts.quota !== false;
  return loopBackend('xfs', opts.sizeMiB ?? 320, (dev) => run('mkfs.xfs', ['-q', '-f', dev]), quota ? ['prjquota'] : []);
}

/**
 * A loop-mounted ext4 with the project quota feature, mounted with prjquota so limits are enforced (quota: false
 * makes a plain ext4). Rejects with BackendUnsupported when the kernel lacks CONFIG_QUOTA.
 */
export function createExt4(opts: { sizeMiB?: number; quota?: boolean } = {}): Promise<LoopBackend> {
  const quota = opts.quota !== false;
  const features = quota ? ['-O', 'quota,project', '-E', 'quotatype=prjquota'] : [];
  return loopBackend(
    'ext4',
    opts.sizeMiB ?? 256,
    (dev) => run('mkfs.ext4', ['-q', '-F', ...features, dev]),
    quota ? ['prjquota'] : [],
    undefined,
    (dev) => run('mkfs.ext4', ['-q', '-F', dev]),
  );
}

const quotaProbe = new Map<'xfs' | 'ext4', Promise<string | undefined>>();

/**
 * Why project quotas cannot be tested on this machine (tools or kernel support missing), or undefined. Creates
 * and destroys a throw-away filesystem once per process to find out.
 */
export function projectQuotaMissing(kind: 'xfs' | 'ext4'): Promise<string | undefined> {
  let p = quotaProbe.get(kind);
  if (!p) {
    p = (async () => {
      const missing = await backendMissing(kind);
      if (missing) return missing;
      try {
        const b = kind === 'xfs' ? await createXfs() : await createExt4();
        await b.cleanup();
        return undefined;
      } catch (e) {
        if (e instanceof BackendUnsupported) return e.message;
        throw e;
      }
    })();
    quotaProbe.set(kind, p);
  }
  return p;
}

// ---------------------------------------------------------------------------------------------------------
// ZFS through zfs-fuse

async function zfsDaemonReady(): Promise<boolean> {
  try {
    await run('zpool', ['list', '-H', '-o', 'name'], 20_000);
    return true;
  } catch {
    return false;
  }
}

function zfsFusePids(): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv0 = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0')[0] ?? '';
      if (path.basename(argv0) === 'zfs-fuse') pids.push(Number(entry));
    } catch {
      /* exited meanwhile */
    }
  }
  return pids;
}

/** Kills a zfs-fuse that stopped answering (or is about to be replaced) and detaches its FUSE mounts. */
async function killZfsFuse(): Promise<void> {
  for (const pid of zfsFusePids()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  const deadline = Date.now() + 10_000;
  while (zfsFusePids().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(' - fuse.zfs '));
  for (const line of mounts) {
    const mountpoint = line.split(' ')[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    await run('umount', ['-l', mountpoint], 10_000).catch(() => undefined);
  }
}

async function zfsPoolNames(timeoutMs: number): Promise<string[] | undefined> {
  try {
    return (await run('zpool', ['list', '-H', '-o', 'name'], timeoutMs)).stdout.split('\n').filter(Boolean);
  } catch {
    return undefined;
  }
}

/**
 * Starts the zfs-fuse daemon when it is not running, and keeps it usable for the suites:
 * - one that does not answer within 20 s (zfs-fuse has been seen to stall for good under concurrent load) is
 *   killed and replaced, so one stall fails one suite rather than every zfs test after it;
 * - one without xattr support is replaced when it serves no pools (nobody else is using it).
 */
export async function ensureZfsFuse(): Promise<void> {
  const pools = await zfsPoolNames(20_000);
  const running = zfsFusePids().length > 0;
  if (pools !== undefined && (pools.length > 0 || zfsXattrsMissing() === undefined)) return;
  if (running) await killZfsFuse();
  await new Promise<void>((resolve, reject) => {
    // --enable-xattr: zfs-fuse answers EOPNOTSUPP to every xattr call without it, and layers carry xattrs
    // (security.capability, user.*); the conformance suite compares them.
    const child = spawn('zfs-fuse', ['--enable-xattr'], { stdio: 'ignore', detached: true });
    child.on('error', reject);
    // The foreground process exits once the daemon has forked (a concurrent start by someone else just fails);
    // keep the child referenced until then or Node may exit with this promise pending.
    child.on('exit', () => resolve());
  });
  // Short probes: a daemon still starting (or a replaced one still dying) can make one probe hang.
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if ((await zfsPoolNames(3_000)) !== undefined) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error('zfs-fuse did not become ready within 60 s');
}

/**
 * Whether the running zfs-fuse daemon supports xattrs (it must be started with -x/--enable-xattr or have
 * enable-xattr in /etc/zfs/zfsrc). A daemon someone else started without it cannot be changed here (it is
 * shared and never restarted by tests): xattr checks on zfs should skip with this reason.
 */
export function zfsXattrsMissing(): string | undefined {
  try {
    const rc = fs.existsSync('/etc/zfs/zfsrc') ? fs.readFileSync('/etc/zfs/zfsrc', 'utf8') : '';
    if (/^\s*enable-xattr\b/m.test(rc)) return undefined;
    for (const pid of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
      let cmd: string[];
      try {
        cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      } catch {
        continue;
      }
      if (!cmd[0] || path.basename(cmd[0]) !== 'zfs-fuse') continue;
      return cmd.some((a) => a === '-x' || a === '--enable-xattr')
        ? undefined
        : `the running zfs-fuse daemon (pid ${pid}) was started without --enable-xattr: xattrs are unsupported on its datasets`;
    }
    return 'zfs-fuse is not running';
  } catch (e) {
    return `cannot tell whether zfs-fuse supports xattrs: ${(e as Error).message}`;
  }
}

/**
 * A pool on a sparse image file plus an empty parent dataset `<pool>/strata` (mountpoint=legacy, so the driver
 * decides where its children are mounted). Pool names use '_' because some zfs-fuse tools dislike '-'.
 */
export async function createZfsPool(opts: { sizeMiB?: number } = {}): Promise<ZfsBackend> {
  await ensureZfsFuse();
  const name = uniqueName('zfs');
  const pool = name.replace(/-/g, '_');
  const dir = path.join(BACKEND_BASE, name);
  await fs.promises.mkdir(dir, { recursive: true });
  const image = path.join(dir, 'image');
  const fh = await fs.promises.open(image, 'w');
  await fh.truncate((opts.sizeMiB ?? 256) * 1024 * 1024).finally(() => fh.close());
  let created = false;
  try {
    await run('zpool', ['create', '-m', 'none', pool, image]);
    created = true;
    await run('zfs', ['create', '-o', 'mountpoint=none', `${pool}/strata`]);
  } catch (e) {
    if (created) await run('zpool', ['destroy', '-f', pool]).catch(() => undefined);
    await fs.promises.rm(dir, { recursive: true, force: true });
    throw e;
  }
  let done = false;
  return {
    pool,
    dataset: `${pool}/strata`,
    image,
    async cleanup() {
      if (done) return;
      done = true;
      await destroyPool(pool);
      await fs.promises.rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Destroys one of our pools, forcing unmounts of its datasets (zfs-fuse keeps FUSE mounts per dataset). zfs-fuse
 * answers "pool is busy" for a while after the last file of a dataset is closed, so busy is retried (bounded).
 */
async function destroyPool(pool: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (let attempt = 0; ; attempt++) {
    try {
      await run('zpool', ['destroy', '-f', pool]);
      return;
    } catch (e) {
      const msg = (e as Error).message;
      if (/no such pool/i.test(msg)) return;
      if (Date.now() > deadline) throw e;
      // A busy dataset mount blocks destroy: unmount our pool's datasets (lazily after the first try), then retry.
      const { stdout } = await run('zfs', ['list', '-H', '-o', 'name,mounted,mountpoint', '-r', pool]).catch(() => ({ stdout: '' }));
      for (const line of stdout.split('\n')) {
        const [ds, mounted, mountpoint] = line.split('\t');
        if (!ds || mounted !== 'yes') continue;
        await run('zfs', ['unmount', '-f', ds]).catch(async () => {
          if (attempt > 0 && mountpoint?.startsWith('/')) await run('umount', ['-l', mountpoint]).catch(() => undefined);
        });
      }
      await new Promise((r) => setTimeout(r, Math.min(500 * (attempt + 1), 3000)));
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Leftovers of killed runs

/**
 * Removes what a killed run left behind: mounts below BACKEND_BASE, loop devices backed by its images, zfs-fuse
 * pools, and directories — only for names whose owning pid is gone. Safe to call at the start of every suite.
 */
export async function cleanupStale(): Promise<string[]> {
  const removed: string[] = [];
  // ZFS pools first: their image files live in the directories removed below.
  if (fs.existsSync('/usr/sbin/zpool') && (await zfsDaemonReady())) {
    const { stdout } = await run('zpool', ['list', '-H', '-o', 'name']).catch(() => ({ stdout: '' }));
    for (const pool of stdout.split('\n').filter(Boolean)) {
      if (!pool.startsWith(`${BACKEND_PREFIX}_`) || ownerAlive(pool)) continue;
      await destroyPool(pool).then(() => removed.push(`pool ${pool}`), () => undefined);
    }
  }
  let entries: string[] = [];
  try {
    entries = await fs.promises.readdir(BACKEND_BASE);
  } catch {
    return removed;
  }
  const stale = entries.filter((n) => n.startsWith(`${BACKEND_PREFIX}-`) && !ownerAlive(n));
  if (stale.length === 0) return removed;
  const loops = await loopDevices();
  for (const name of stale) {
    const dir = path.join(BACKEND_BASE, name);
    for (const m of mountsUnder(dir)) await run('umount', ['-l', m]).then(() => removed.push(`mount ${m}`), () => undefined);
    for (const [dev, file] of loops) {
      if (file.startsWith(dir + '/')) await run('losetup', ['-d', dev]).then(() => removed.push(`loop ${dev}`), () => undefined);
    }
    await fs.promises.rm(dir, { recursive: true, force: true });
    removed.push(`dir ${dir}`);
  }
  return removed;
}

/** [device, backing file] of every loop device. */
async function loopDevices(): Promise<Array<[string, string]>> {
  const { stdout } = await run('losetup', ['--list', '--noheadings', '--raw', '--output', 'NAME,BACK-FILE']).catch(() => ({
    stdout: '',
  }));
  const out: Array<[string, string]> = [];
  for (const line of stdout.split('\n')) {
    const i = line.indexOf(' ');
    if (i > 0) out.push([line.slice(0, i), line.slice(i + 1).replace(/ \(deleted\)$/, '')]);
  }
  return out;
}
