/**
 * Project quotas (XFS `prjquota`, ext4 `project` feature mounted with `prjquota`): a size limit and usage
 * accounting for one directory tree, used by the overlay and native drivers (on the upper/fs directory's
 * backing filesystem) and by plain-directory volumes.
 *
 * Project ids are allocated by callers, not here: strata derives them from the metadata store's integer ids,
 * `projectIdFor('snapshot', id)` = PROJECT_ID_BASE.snapshot + id and `projectIdFor('volume', id)` =
 * PROJECT_ID_BASE.volume + id. The ranges keep clear of 0 (every inode's default project) and of the small ids
 * administrators hand out in /etc/projid, and stay below 2^31 for tools that print ids as signed numbers.
 * Two strata roots on one filesystem would collide; a root owns its filesystem, as with the drivers.
 *
 * Enforcement differs by filesystem: XFS enforces the hard limit on everyone (the write fails with ENOSPC), while
 * ext4 (the generic VFS quota code) lets processes with CAP_SYS_RESOURCE exceed it and fails others with EDQUOT.
 * So on ext4 the limit binds containers (runtimes drop CAP_SYS_RESOURCE) but not the root daemon's own writes,
 * e.g. the unpacker; usage is accounted either way.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { native } from '../../native/index';
import type { NativeBinding } from '../../native/index';
import { parseMountinfo, type MountEntry } from '../core/mountinfo';

export type QuotaFsType = 'xfs' | 'ext4';

export interface ProjectQuotaSupport {
  supported: boolean;
  /** The block device quotactl(2) talks to (e.g. /dev/loop3). */
  device?: string;
  fsType?: QuotaFsType;
  /** The mount point holding the directory. */
  mountpoint?: string;
  /** Why project quotas cannot be used, when supported is false. */
  reason?: string;
}

export interface QuotaUsage {
  bytes: number;
  inodes: number;
}

/** Each range holds 2^29 ids; ids beyond it would run into the next range. */
export const PROJECT_ID_RANGE = 0x2000_0000;
export const PROJECT_ID_BASE = {
  snapshot: 0x4000_0000,
  volume: 0x6000_0000,
} as const;

/** The project id of a snapshot or volume, from its integer id in the metadata store. */
export function projectIdFor(kind: keyof typeof PROJECT_ID_BASE, id: number): number {
  if (!Number.isInteger(id) || id < 1 || id >= PROJECT_ID_RANGE) {
    throw new RangeError(`${kind} id ${id} has no project id (must be an integer in [1, ${PROJECT_ID_RANGE}))`);
  }
  return PROJECT_ID_BASE[kind] + id;
}

/** Linux's dev_t encoding (glibc's gnu_dev_major/minor), on the bigint from stat so no bits are lost. */
function splitDev(dev: bigint): { major: number; minor: number } {
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return { major, minor };
}

function within(dir: string, mountpoint: string): boolean {
  return mountpoint === '/' || dir === mountpoint || dir.startsWith(mountpoint + '/');
}

/** The mount holding dir: same device, deepest mount point that contains dir (bind mounts share a device). */
function findMount(entries: MountEntry[], dir: string, dev: { major: number; minor: number }): MountEntry | undefined {
  const byDevice = entries.filter((e) => e.major === dev.major && e.minor === dev.minor);
  const containing = (list: MountEntry[]) =>
    list.filter((e) => within(dir, e.mountpoint)).sort((a, b) => b.mountpoint.length - a.mountpoint.length)[0];
  // btrfs subvolumes report an anonymous device that mountinfo does not list: fall back to the path alone.
  return containing(byDevice) ?? byDevice[0] ?? containing(entries);
}

/** The /dev node of a block device: mountinfo's source when it is that device, else from sysfs. */
async function blockDevice(entry: MountEntry): Promise<string | undefined> {
  const matches = async (p: string): Promise<boolean> => {
    try {
      const st = await fs.promises.stat(p, { bigint: true });
      if (!st.isBlockDevice()) return false;
      const d = splitDev(st.rdev);
      return d.major === entry.major && d.minor === entry.minor;
    } catch {
      return false;
    }
  };
  if (entry.source.startsWith('/') && (await matches(entry.source))) return entry.source;
  try {
    const uevent = await fs.promises.readFile(`/sys/dev/block/${entry.major}:${entry.minor}/uevent`, 'utf8');
    const name = /^DEVNAME=(.+)$/m.exec(uevent)?.[1];
    if (name && (await matches(`/dev/${name}`))) return `/dev/${name}`;
  } catch {
    /* not a block device (tmpfs, overlay, ...) */
  }
  return undefined;
}

/** Mount options that turn on enforced project quotas, per filesystem (as the kernel shows them). */
const ENFORCING: Record<QuotaFsType, string[]> = {
  xfs: ['prjquota', 'pquota'],
  ext4: ['prjquota'],
};

/**
 * Whether dir's filesystem enforces project quotas, and the device and type to use them with. Reads
 * /proc/self/mountinfo, then asks the kernel once (quotactl for project 0) so that a mount option without
 * working quota support is reported as unsupported rather than failing later.
 */
export async function detectProjectQuota(dir: string, binding?: NativeBinding): Promise<ProjectQuotaSupport> {
  let real: string;
  let dev: { major: number; minor: number };
  try {
    real = await fs.promises.realpath(dir);
    dev = splitDev((await fs.promises.stat(real, { bigint: true })).dev);
  } catch (e) {
    return { supported: false, reason: `cannot stat ${dir}: ${(e as Error).message}` };
  }
  const entries = parseMountinfo(await fs.promises.readFile('/proc/self/mountinfo', 'utf8'));
  const entry = findMount(entries, real, dev);
  if (!entry) return { supported: false, reason: `no mount found for ${real} in /proc/self/mountinfo` };
  const mountpoint = entry.mountpoint;
  if (entry.fsType !== 'xfs' && entry.fsType !== 'ext4') {
    return { supported: false, mountpoint, reason: `${mountpoint} is ${entry.fsType}; project quotas need XFS or ext4` };
  }
  const fsType: QuotaFsType = entry.fsType;
  const options = new Set([...entry.superOptions, ...entry.mountOptions]);
  if (!ENFORCING[fsType].some((o) => options.has(o))) {
    const accounting = options.has('pqnoenforce') ? ' (pqnoenforce: accounting only)' : '';
    return {
      supported: false,
      fsType,
      mountpoint,
      reason: `${mountpoint} (${fsType}) is not mounted with prjquota${accounting}`,
    };
  }
  const device = await blockDevice(entry);
  if (!device) {
    return { supported: false, fsType, mountpoint, reason: `no block device node for ${entry.major}:${entry.minor}` };
  }
  try {
    (binding ?? native()).getProjectUsage(device, 0);
  } catch (e) {
    return { supported: false, device, fsType, mountpoint, reason: `quotactl on ${device}: ${(e as Error).message}` };
  }
  return { supported: true, device, fsType, mountpoint };
}

function checkProjectId(projectId: number): void {
  if (!Number.isInteger(projectId) || projectId < 1 || projectId > 0xffff_fffe) {
    // 0 is every inode's default project: limiting it would limit the whole filesystem.
    throw new RangeError(`project id ${projectId} must be an integer in [1, 2^32-2]`);
  }
}

export interface AssignOptions {
  /**
   * Also give every existing directory and regular file below the target the project id (new entries inherit
   * it from their directory). Symlinks, devices and fifos keep theirs: the ioctl needs an open fd, which they
   * cannot give without side effects, and they hold next to no blocks.
   */
  recursive?: boolean;
}

/** Project quotas on one filesystem (one block device). Calls are synchronous, like the driver operations. */
export class ProjectQuota {
  private readonly n: NativeBinding;

  constructor(
    readonly device: string,
    readonly fsType: QuotaFsType,
    binding?: NativeBinding,
  ) {
    this.n = binding ?? native();
  }

  /** A ProjectQuota for the filesystem holding dir; throws with the reason when it has no project quotas. */
  static async forDir(dir: string, binding?: NativeBinding): Promise<ProjectQuota> {
    const s = await detectProjectQuota(dir, binding);
    if (!s.supported || !s.device || !s.fsType) throw new Error(`project quotas unavailable: ${s.reason}`);
    return new ProjectQuota(s.device, s.fsType, binding);
  }

  /**
   * Puts a directory (with the inherit flag, so everything created below joins the project) or a file into
   * a project. target is an open fd (not closed here) or a path (a final symlink is not followed).
   */
  assign(target: number | string, projectId: number, opts: AssignOptions = {}): void {
    checkProjectId(projectId);
    if (typeof target === 'number') {
      this.assignFd(target, projectId, opts.recursive === true ? '' : undefined);
      return;
    }
    const fd = fs.openSync(target, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    try {
      this.assignFd(fd, projectId, opts.recursive === true ? target : undefined);
    } finally {
      fs.closeSync(fd);
    }
  }

  private assignFd(fd: number, projectId: number, walkPath: string | undefined): void {
    const isDir = fs.fstatSync(fd).isDirectory();
    this.n.setProjectId(fd, projectId, isDir);
    if (!isDir || walkPath === undefined) return;
    // An fd given without a path is walked through /proc/self/fd, which names the directory it holds.
    this.walk(walkPath === '' ? `/proc/self/fd/${fd}` : walkPath, projectId);
  }

  private walk(dir: string, projectId: number): void {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory() && !entry.isFile()) continue;
      const p = path.join(dir, entry.name);
      const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
      try {
        this.n.setProjectId(fd, projectId, entry.isDirectory());
      } finally {
        fs.closeSync(fd);
      }
      if (entry.isDirectory()) this.walk(p, projectId);
    }
  }

  /**
   * The hard limit on the project's disk usage in bytes (0 removes it). The kernel keeps limits in blocks
   * (512 B on XFS, 1 KiB on ext4): the limit is rounded up to the next block, never down.
   */
  setLimit(projectId: number, bytes: number): void {
    checkProjectId(projectId);
    if (!Number.isFinite(bytes) || bytes < 0 || bytes > Number.MAX_SAFE_INTEGER) {
      throw new RangeError(`quota limit ${bytes} must be a non-negative number of bytes`);
    }
    this.n.setProjectQuota(this.device, projectId, Math.ceil(bytes));
  }

  clearLimit(projectId: number): void {
    this.setLimit(projectId, 0);
  }

  /** Bytes and inodes the project holds now (zero for a project that owns nothing). */
  usage(projectId: number): QuotaUsage {
    checkProjectId(projectId);
    const [bytes, inodes] = this.n.getProjectUsage(this.device, projectId);
    return { bytes, inodes };
  }
}
