/**
 * Volumes as btrfs subvolumes below `<root>/volumes` (which must be on btrfs): snapshots and clones are subvolume
 * snapshots (instant, shared extents, independent of their origin), size limits are qgroup limits on the
 * subvolume's referenced bytes, and usage comes from its qgroup.
 */
import * as fs from 'node:fs';
import { failedPrecondition } from '../../core/errors';
import { run, ToolError } from '../exec';
import { walkUsage } from '../walk';
import type { BackendData } from '../store';
import type { VolumeUsage } from '../types';
import { exists } from './common';
import type { StoredVolume, VolumeBackend, VolumeTarget } from './backend';

const BTRFS_MAGIC = 0x9123683e;

export class BtrfsVolumeBackend implements VolumeBackend {
  readonly name = 'btrfs' as const;
  readonly copiesDependOnOrigin = false;

  constructor(private readonly volumesRoot: string) {}

  async init(): Promise<void> {
    await fs.promises.mkdir(this.volumesRoot, { recursive: true, mode: 0o711 });
    const st = await fs.promises.statfs(this.volumesRoot);
    if (st.type !== BTRFS_MAGIC) {
      throw failedPrecondition(`btrfs volumes need ${this.volumesRoot} on btrfs (statfs type 0x${st.type.toString(16)})`);
    }
  }

  sizeLimitUnsupported(): string | undefined {
    return undefined; // quotas are enabled on demand by the first limited volume
  }

  private async ensureQuota(): Promise<void> {
    try {
      await run('btrfs', ['qgroup', 'show', this.volumesRoot]);
    } catch (e) {
      if (!(e instanceof ToolError)) throw e;
      // Not enabled yet: enabling is filesystem-wide and idempotent.
      await run('btrfs', ['quota', 'enable', this.volumesRoot]);
    }
  }

  private async limit(path: string, bytes: number): Promise<void> {
    if (bytes <= 0) return;
    await this.ensureQuota();
    await run('btrfs', ['qgroup', 'limit', String(bytes), path]);
  }

  private async rootId(path: string): Promise<number> {
    return Number((await run('btrfs', ['inspect-internal', 'rootid', path])).trim());
  }

  async create(t: VolumeTarget): Promise<BackendData> {
    await run('btrfs', ['subvolume', 'create', t.path]);
    await fs.promises.chmod(t.path, 0o755);
    await this.limit(t.path, t.sizeLimit);
    return { subvolId: await this.rootId(t.path) };
  }

  async copy(src: StoredVolume, t: VolumeTarget, readonly: boolean): Promise<BackendData> {
    await run('btrfs', ['subvolume', 'snapshot', ...(readonly ? ['-r'] : []), src.path, t.path]);
    // A read-only snapshot cannot grow, so only clones get a limit.
    if (!readonly) await this.limit(t.path, t.sizeLimit);
    return { subvolId: await this.rootId(t.path) };
  }

  async restore(): Promise<void> {
    // Subvolumes, their read-only flag and qgroup limits are on disk: nothing to redo.
  }

  async remove(vol: StoredVolume): Promise<void> {
    if (!(await exists(vol.path))) return;
    let id = typeof vol.data.subvolId === 'number' ? vol.data.subvolId : undefined;
    try {
      id ??= await this.rootId(vol.path);
    } catch {
      /* not a subvolume: a directory left by a failed create, removed below */
    }
    if (id === undefined || id === 5) {
      await fs.promises.rm(vol.path, { recursive: true, force: true });
      return;
    }
    await run('btrfs', ['subvolume', 'delete', vol.path]);
    // The qgroup outlives the subvolume unless destroyed; the kernel may still be cleaning it (EBUSY): harmless.
    await run('btrfs', ['qgroup', 'destroy', `0/${id}`, this.volumesRoot]).catch(() => undefined);
  }

  async usage(vol: StoredVolume): Promise<VolumeUsage> {
    const id = typeof vol.data.subvolId === 'number' ? vol.data.subvolId : await this.rootId(vol.path);
    let out: string | undefined;
    try {
      // qgroup numbers are updated at transaction commit: sync first so fresh writes count.
      await run('btrfs', ['filesystem', 'sync', vol.path]);
      out = await run('btrfs', ['qgroup', 'show', '-reF', '--raw', vol.path]);
    } catch {
      out = undefined;
    }
    const line = out?.split('\n').find((l) => l.trim().startsWith(`0/${id} `));
    if (!line) {
      const w = await walkUsage(vol.path);
      return { ...w, limit: vol.sizeLimit, method: 'walk' };
    }
    const f = line.trim().split(/\s+/);
    const rfer = Number(f[1]);
    const maxRfer = f[3] === 'none' ? 0 : Number(f[3]);
    // btrfs keeps no per-subvolume inode count, and a walk would cost what qgroups save: inodes stay 0.
    return { size: rfer, inodes: 0, limit: Number.isFinite(maxRfer) ? maxRfer : vol.sizeLimit, method: 'qgroup' };
  }

  status(): Record<string, string> {
    return { backend: 'btrfs subvolume', root: this.volumesRoot };
  }
}
