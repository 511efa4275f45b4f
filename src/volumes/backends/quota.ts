/**
 * Project quotas for directory volumes (XFS prjquota, ext4 project quota) through the native addon's
 * FS_IOC_FSSETXATTR and quotactl wrappers. A volume's project id is its directory's inode number: unique on the
 * filesystem while the directory exists, so two strata roots (or the snapshot driver's own quotas, which use
 * their own ids) sharing a filesystem cannot hand out the same id twice. It is persisted with the volume, since
 * the limit must be dropped after the directory (and so its inode number) is gone.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FS_MAGIC, native } from '../../../native/index';
import type { BackendData } from '../store';
import type { DirQuota } from './dir';

interface MountEntry {
  mountpoint: string;
  fstype: string;
  source: string;
  superOptions: string[];
}

const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The mount holding dir: the longest mountpoint that is a prefix of its real path. */
function mountOf(dir: string): MountEntry | undefined {
  const real = fs.realpathSync(dir);
  let best: MountEntry | undefined;
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const dash = line.indexOf(' - ');
    if (dash < 0) continue;
    const mp = unescape(line.slice(0, dash).split(' ')[4] ?? '');
    const [fstype = '', source = '', opts = ''] = line.slice(dash + 3).split(' ');
    const inside = mp === '/' || real === mp || real.startsWith(mp + '/');
    if (inside && (!best || mp.length >= best.mountpoint.length)) {
      best = { mountpoint: mp, fstype, source: unescape(source), superOptions: opts.split(',') };
    }
  }
  return best;
}

/** Project ids must fit quotactl's 32-bit id and stay clear of 0 (the default project). */
const MAX_PROJECT_ID = 0xffff_fffe;

class NativeProjectQuota implements DirQuota {
  constructor(
    private readonly device: string,
    private readonly fstype: string,
  ) {}

  async assign(dir: string, _volumeId: number, limitBytes: number): Promise<BackendData> {
    const n = native();
    const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      const ino = fs.fstatSync(fd).ino;
      if (ino <= 0 || ino > MAX_PROJECT_ID) throw new Error(`inode number ${ino} of ${dir} does not fit a project id`);
      n.setProjectId(fd, ino, true);
      n.setProjectQuota(this.device, ino, limitBytes);
      return { projectId: ino, device: this.device };
    } finally {
      fs.closeSync(fd);
    }
  }

  async usage(_dir: string, data: BackendData): Promise<{ size: number; inodes: number }> {
    const [size, inodes] = native().getProjectUsage(String(data.device ?? this.device), Number(data.projectId));
    return { size, inodes };
  }

  async release(data: BackendData): Promise<void> {
    if (typeof data.projectId !== 'number') return;
    native().setProjectQuota(String(data.device ?? this.device), data.projectId, 0);
  }

  describe(): string {
    return `project quota (${this.fstype} on ${this.device})`;
  }
}

/** Project quota support on the filesystem holding dir, or why there is none. */
export async function detectDirQuota(dir: string): Promise<DirQuota | string> {
  const st = await fs.promises.statfs(dir);
  if (st.type !== FS_MAGIC.XFS && st.type !== FS_MAGIC.EXT4) return `statfs type 0x${st.type.toString(16)} is neither XFS nor ext4`;
  const m = mountOf(dir);
  if (!m) return `no mount found for ${dir}`;
  // Accounting alone (pqnoenforce) would let a volume grow past its size, so only enforced quotas count.
  const enforced = m.superOptions.some((o) => o === 'prjquota' || o === 'pquota' || o === 'prjjquota');
  if (!enforced) return `${m.mountpoint} (${m.fstype}) is not mounted with prjquota`;
  if (!path.isAbsolute(m.source)) return `${m.mountpoint} has no block device (${m.source})`;
  try {
    native().getProjectUsage(m.source, 0);
  } catch (e) {
    return `quotactl on ${m.source} failed: ${(e as Error).message}`;
  }
  return new NativeProjectQuota(m.source, m.fstype);
}
