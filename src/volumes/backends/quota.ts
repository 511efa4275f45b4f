/**
 * Project quotas for directory volumes through src/quota (XFS prjquota, ext4 project quota). A volume's project
 * id is `projectIdFor('volume', id)`: the volume range src/quota reserves, so volumes never share a project with
 * snapshots on the same filesystem. The id and device are persisted with the volume, since the limit must be
 * dropped after the directory is gone.
 */
import { detectProjectQuota, ProjectQuota, projectIdFor } from '../../quota/index';
import type { BackendData } from '../store';
import type { DirQuota } from './dir';

class VolumeProjectQuota implements DirQuota {
  constructor(private readonly q: ProjectQuota) {}

  async assign(dir: string, volumeId: number, limitBytes: number): Promise<BackendData> {
    const projectId = projectIdFor('volume', volumeId);
    this.q.assign(dir, projectId);
    // A limit left by an earlier run with the same id (a root recreated from scratch) must not carry over.
    if (limitBytes > 0) this.q.setLimit(projectId, limitBytes);
    else this.q.clearLimit(projectId);
    return { projectId, device: this.q.device };
  }

  async usage(_dir: string, data: BackendData): Promise<{ size: number; inodes: number }> {
    const u = this.q.usage(Number(data.projectId));
    return { size: u.bytes, inodes: u.inodes };
  }

  async release(data: BackendData): Promise<void> {
    if (typeof data.projectId === 'number') this.q.clearLimit(data.projectId);
  }

  describe(): string {
    return `project quota (${this.q.fsType} on ${this.q.device})`;
  }
}

/** Project quota support on the filesystem holding dir, or why there is none. */
export async function detectDirQuota(dir: string): Promise<DirQuota | string> {
  const s = await detectProjectQuota(dir);
  if (!s.supported || !s.device || !s.fsType) return s.reason ?? 'no project quota';
  return new VolumeProjectQuota(new ProjectQuota(s.device, s.fsType));
}
