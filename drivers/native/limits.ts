/**
 * Size limits and O(1) usage for directory-based drivers through project quotas (src/quota: XFS prjquota, ext4
 * project). Each snapshot's directory gets its own project (`projectIdFor('snapshot', id)`), set to inherit
 * before anything is written into it, so every file the layer ever holds is charged to it.
 *
 * Without project quotas a size limit is refused (FailedPrecondition), never silently ignored: a container
 * that was promised a cap must not fill the node's disk.
 */
import type { Usage } from '../../src/core/types';
import { failedPrecondition } from '../../src/core/errors';
import { detectProjectQuota, ProjectQuota, projectIdFor } from '../../src/quota/index';

export interface QuotaSupport {
  quota?: ProjectQuota;
  /** What status() shows: the kind of quota in use, or why there is none. */
  description: string;
}

export async function detectQuota(root: string): Promise<QuotaSupport> {
  const s = await detectProjectQuota(root);
  if (!s.supported || !s.device || !s.fsType) return { description: `none (${s.reason ?? 'project quotas unavailable'})` };
  return { quota: new ProjectQuota(s.device, s.fsType), description: `project quotas (${s.fsType} on ${s.device})` };
}

export class Limits {
  constructor(
    private readonly support: QuotaSupport,
    private readonly root: string,
  ) {}

  get enabled(): boolean {
    return this.support.quota !== undefined;
  }
  get description(): string {
    return this.support.description;
  }

  /**
   * Puts a new snapshot's directory under its own project (whenever quotas exist, so usage is O(1)) and sets
   * the limit. Called on the empty directory, before any content, so inheritance covers everything.
   */
  async setup(dir: string, snapshotId: number, sizeLimit: number | undefined): Promise<void> {
    const q = this.support.quota;
    const limited = sizeLimit !== undefined && sizeLimit > 0;
    if (limited && !q) {
      throw failedPrecondition(
        `a size limit of ${sizeLimit} bytes was requested, but ${this.root} cannot enforce it: ${this.support.description}; ` +
          'put the root on XFS mounted with prjquota or ext4 with the project feature mounted with prjquota, or drop the limit',
      );
    }
    if (!q) return;
    const pid = projectIdFor('snapshot', snapshotId);
    q.assign(dir, pid);
    // Always set: a limit left by an earlier life of this id (a crash before remove) must not linger.
    q.setLimit(pid, limited ? sizeLimit : 0);
  }

  /** Usage from quota accounting, or undefined when there is none. */
  async usage(snapshotId: number): Promise<Usage | undefined> {
    const q = this.support.quota;
    if (!q) return undefined;
    const u = q.usage(projectIdFor('snapshot', snapshotId));
    return { size: u.bytes, inodes: u.inodes };
  }

  /** Drops a removed snapshot's limit. */
  async release(snapshotId: number): Promise<void> {
    const q = this.support.quota;
    if (q) q.clearLimit(projectIdFor('snapshot', snapshotId));
  }
}
