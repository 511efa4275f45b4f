/**
 * Size limits and O(1) usage for directory-based drivers through project quotas (src/quota: XFS prjquota, ext4
 * project). Each snapshot's directory gets its own project (id derived from the snapshot id by src/quota), set
 * to inherit before anything is written into it, so every file the layer ever holds is charged to it.
 *
 * Without project quotas a size limit is refused (FailedPrecondition), never silently ignored: a container
 * that was promised a cap must not fill the node's disk.
 */
import type { Usage } from '../../src/core/types';
import { failedPrecondition } from '../../src/core/errors';

/** The part of src/quota's API the drivers use. */
interface ProjectQuotaApi {
  assign(dir: string, snapshotId: number): Promise<void> | void;
  setLimit(snapshotId: number, bytes: number): Promise<void> | void;
  usage(snapshotId: number): Promise<QuotaUsage> | QuotaUsage;
}
type QuotaUsage = { size?: number; bytes?: number; inodes: number } | [number, number];

interface QuotaModule {
  detectProjectQuota(dir: string): Promise<ProjectQuotaApi | null | undefined | { supported: false; reason?: string }>;
}

export interface QuotaSupport {
  quota?: ProjectQuotaApi;
  /** What status() shows: the kind of quota in use, or why there is none. */
  description: string;
}

function loadQuotaModule(): QuotaModule | undefined {
  try {
    // Loaded lazily: src/quota is optional at build time and only useful on quota-capable filesystems.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const m = require('../../src/quota') as Partial<QuotaModule>;
    return typeof m.detectProjectQuota === 'function' ? (m as QuotaModule) : undefined;
  } catch {
    return undefined;
  }
}

export async function detectQuota(root: string): Promise<QuotaSupport> {
  const mod = loadQuotaModule();
  if (!mod) return { description: 'none (project quota support is not built in)' };
  let q: Awaited<ReturnType<QuotaModule['detectProjectQuota']>>;
  try {
    q = await mod.detectProjectQuota(root);
  } catch (e) {
    return { description: `none (${e instanceof Error ? e.message : String(e)})` };
  }
  if (!q || ('supported' in q && q.supported === false)) {
    const reason = q && 'reason' in q && q.reason ? q.reason : `the filesystem holding ${root} has no project quotas enabled`;
    return { description: `none (${reason})` };
  }
  return { quota: q as ProjectQuotaApi, description: 'project quotas' };
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
   * Puts a new snapshot's directory under its own project (when quotas exist, so usage is O(1)) and sets the
   * limit. Called on the empty directory, before any content, so inheritance covers everything.
   */
  async setup(dir: string, snapshotId: number, sizeLimit: number | undefined): Promise<void> {
    const q = this.support.quota;
    if (sizeLimit !== undefined && sizeLimit > 0 && !q) {
      throw failedPrecondition(
        `a size limit of ${sizeLimit} bytes was requested, but ${this.root} cannot enforce it: ${this.support.description}; ` +
          'put the root on XFS mounted with prjquota or ext4 with the project feature, or drop the limit',
      );
    }
    if (!q) return;
    await q.assign(dir, snapshotId);
    if (sizeLimit !== undefined && sizeLimit > 0) await q.setLimit(snapshotId, sizeLimit);
  }

  /** Usage from quota accounting, or undefined when there is none. */
  async usage(snapshotId: number): Promise<Usage | undefined> {
    const q = this.support.quota;
    if (!q) return undefined;
    const u = await q.usage(snapshotId);
    if (Array.isArray(u)) return { size: u[0], inodes: u[1] };
    return { size: u.size ?? u.bytes ?? 0, inodes: u.inodes };
  }

  /** Drops a removed snapshot's limit so a later project with the same id starts clean. */
  async release(snapshotId: number): Promise<void> {
    const q = this.support.quota;
    if (q) await q.setLimit(snapshotId, 0);
  }
}
