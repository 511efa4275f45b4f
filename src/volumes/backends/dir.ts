/**
 * Volumes as plain directories below `<root>/volumes` (overlay and native roots). Where the filesystem has project
 * quotas (XFS prjquota, ext4 project), each volume directory gets its own project id with the inherit flag, so
 * its limit is enforced by the kernel and its usage is O(1); elsewhere sizes cannot be limited and usage is a
 * walk. A snapshot is a copy (`cp --reflink=auto`, so shared extents where the filesystem can) behind a
 * read-only bind mount of itself; a clone is a writable copy. Copies do not depend on their origin.
 */
import * as fs from 'node:fs';
import { run } from '../exec';
import { walkUsage } from '../walk';
import type { BackendData } from '../store';
import type { VolumeUsage } from '../types';
import { isMountpoint } from './common';
import type { StoredVolume, VolumeBackend, VolumeTarget } from './backend';

/** Project quotas as the dir backend uses them; src/volumes/backends/quota.ts adapts src/quota to this. */
export interface DirQuota {
  /** Gives dir (empty, new) its own project with the inherit flag and a hard limit (0 = none). */
  assign(dir: string, volumeId: number, limitBytes: number): Promise<BackendData>;
  usage(dir: string, data: BackendData): Promise<{ size: number; inodes: number }>;
  /** Drops the project's limit after the directory is gone; tolerates a project never assigned. */
  release(data: BackendData): Promise<void>;
  describe(): string;
}

export class DirVolumeBackend implements VolumeBackend {
  readonly name = 'dir' as const;
  readonly copiesDependOnOrigin = false;
  private quota: DirQuota | undefined;
  private noQuotaReason = 'not probed yet';

  constructor(
    private readonly volumesRoot: string,
    /** Finds project quota support on the filesystem holding dir; a string says why there is none. */
    private readonly detectQuota: (dir: string) => Promise<DirQuota | string>,
  ) {}

  async init(): Promise<void> {
    await fs.promises.mkdir(this.volumesRoot, { recursive: true, mode: 0o711 });
    const q = await this.detectQuota(this.volumesRoot);
    if (typeof q === 'string') this.noQuotaReason = q;
    else this.quota = q;
  }

  sizeLimitUnsupported(): string | undefined {
    return this.quota ? undefined : `${this.volumesRoot} has no project quota (${this.noQuotaReason})`;
  }

  private async make(t: VolumeTarget): Promise<BackendData> {
    await fs.promises.mkdir(t.path, { mode: 0o755 });
    await fs.promises.chmod(t.path, 0o755); // mkdir's mode is filtered by the umask
    return this.quota ? this.quota.assign(t.path, t.id, t.sizeLimit) : {};
  }

  create(t: VolumeTarget): Promise<BackendData> {
    return this.make(t);
  }

  async copy(src: StoredVolume, t: VolumeTarget, readonly: boolean): Promise<BackendData> {
    // The project is assigned before copying so every copied inode inherits it and counts against its limit.
    const data = await this.make(t);
    await run('cp', ['-a', '--reflink=auto', '--no-target-directory', `${src.path}/.`, t.path], 3_600_000);
    if (readonly) await this.bindReadonly(t.path);
    return data;
  }

  private async bindReadonly(dir: string): Promise<void> {
    if (isMountpoint(dir)) return;
    await run('mount', ['--bind', dir, dir]);
    await run('mount', ['-o', 'remount,bind,ro', dir]);
  }

  async restore(vol: StoredVolume): Promise<void> {
    // Bind mounts do not survive a reboot; the read-only snapshot must never be handed out writable.
    if (vol.readonly) await this.bindReadonly(vol.path);
  }

  async remove(vol: StoredVolume): Promise<void> {
    if (isMountpoint(vol.path)) {
      await run('umount', [vol.path]).catch(() => run('umount', ['-l', vol.path]));
    }
    await fs.promises.rm(vol.path, { recursive: true, force: true, maxRetries: 3 });
    if (this.quota) await this.quota.release(vol.data);
  }

  async usage(vol: StoredVolume): Promise<VolumeUsage> {
    if (this.quota && Object.keys(vol.data).length > 0) {
      const u = await this.quota.usage(vol.path, vol.data);
      return { ...u, limit: vol.sizeLimit, method: 'quota' };
    }
    const w = await walkUsage(vol.path);
    return { ...w, limit: vol.sizeLimit, method: 'walk' };
  }

  status(): Record<string, string> {
    return {
      backend: 'directory',
      root: this.volumesRoot,
      quota: this.quota ? this.quota.describe() : `none (${this.noQuotaReason})`,
    };
  }
}
