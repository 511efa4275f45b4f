/**
 * Volumes as ZFS datasets `<parent>/volumes/<id>` mounted at `<root>/volumes/<id>`: size limits are `refquota`,
 * usage is the dataset's `referenced`, a snapshot is a read-only clone of a ZFS snapshot of the origin and a clone
 * a writable one. ZFS clones depend on their origin's snapshot, so an origin with copies cannot be removed first
 * (copiesDependOnOrigin): the engine refuses that with the copies' names.
 */
import * as fs from 'node:fs';
import { failedPrecondition, invalidArgument, resourceExhausted } from '../../core/errors';
import { run, ToolError } from '../exec';
import type { BackendData } from '../store';
import type { VolumeUsage } from '../types';
import type { StoredVolume, VolumeBackend, VolumeTarget } from './backend';

/** Names of the ZFS snapshots strata takes for copies: `<origin>@strata-vol-<copy id>`. */
const SNAP_PREFIX = 'strata-vol-';

export class ZfsVolumeBackend implements VolumeBackend {
  readonly name = 'zfs' as const;
  readonly copiesDependOnOrigin = true;
  private readonly parent: string;

  constructor(
    private readonly volumesRoot: string,
    /** The daemon's dataset (config `[driver.zfs] dataset`); volumes live below `<dataset>/volumes`. */
    dataset: string,
  ) {
    if (!dataset) throw invalidArgument('zfs volumes need a dataset ([driver.zfs] dataset = "pool/strata")');
    this.parent = `${dataset}/volumes`;
  }

  private dataset(id: number): string {
    return `${this.parent}/${id}`;
  }

  async init(): Promise<void> {
    await fs.promises.mkdir(this.volumesRoot, { recursive: true, mode: 0o711 });
    try {
      await run('zfs', ['list', '-H', '-o', 'name', this.parent]);
    } catch (e) {
      if (!(e instanceof ToolError)) throw e;
      try {
        await run('zfs', ['create', '-o', 'mountpoint=none', this.parent]);
      } catch (e2) {
        throw failedPrecondition(`cannot create the volumes dataset ${this.parent}: ${(e2 as Error).message}`);
      }
    }
  }

  sizeLimitUnsupported(): string | undefined {
    return undefined;
  }

  async create(t: VolumeTarget): Promise<BackendData> {
    const ds = this.dataset(t.id);
    const args = ['create', '-o', `mountpoint=${t.path}`];
    if (t.sizeLimit > 0) args.push('-o', `refquota=${t.sizeLimit}`);
    await run('zfs', [...args, ds]);
    await fs.promises.chmod(t.path, 0o755);
    return { dataset: ds };
  }

  async copy(src: StoredVolume, t: VolumeTarget, readonly: boolean): Promise<BackendData> {
    const srcDs = typeof src.data.dataset === 'string' ? src.data.dataset : this.dataset(src.id);
    const snap = `${srcDs}@${SNAP_PREFIX}${t.id}`;
    const ds = this.dataset(t.id);
    await run('zfs', ['snapshot', snap]);
    try {
      const args = ['clone', '-o', `mountpoint=${t.path}`];
      if (readonly) args.push('-o', 'readonly=on');
      else if (t.sizeLimit > 0) args.push('-o', `refquota=${t.sizeLimit}`);
      await run('zfs', [...args, snap, ds]);
    } catch (e) {
      await run('zfs', ['destroy', snap]).catch(() => undefined);
      if (e instanceof ToolError && /out of space/.test(e.stderr)) {
        throw resourceExhausted(`${src.path} holds more than the copy's size limit of ${t.sizeLimit} bytes`);
      }
      throw e;
    }
    return { dataset: ds, originSnapshot: snap };
  }

  async restore(vol: StoredVolume): Promise<void> {
    // zfs-fuse mounts datasets at pool import; mount one that is not (an import with -N, a manual unmount).
    const ds = typeof vol.data.dataset === 'string' ? vol.data.dataset : this.dataset(vol.id);
    const mounted = (await run('zfs', ['get', '-H', '-o', 'value', 'mounted', ds])).trim();
    if (mounted !== 'yes') await run('zfs', ['mount', ds]);
  }

  async remove(vol: StoredVolume): Promise<void> {
    const ds = typeof vol.data.dataset === 'string' ? vol.data.dataset : this.dataset(vol.id);
    let origin: string;
    try {
      origin = (await run('zfs', ['get', '-H', '-o', 'value', 'origin', ds])).trim();
    } catch (e) {
      if (e instanceof ToolError && /does not exist/.test(e.stderr)) return;
      throw e;
    }
    // zfs-fuse reports a just-unmounted FUSE mount as busy for a moment: retry a few times.
    for (let attempt = 0; ; attempt++) {
      try {
        await run('zfs', ['destroy', '-f', ds]);
        break;
      } catch (e) {
        if (e instanceof ToolError && /does not exist/.test(e.stderr)) break;
        if (!(e instanceof ToolError && /busy/.test(e.stderr)) || attempt >= 10) throw e;
        await new Promise((r) => setTimeout(r, 300));
      }
    }
    if (origin.includes(`@${SNAP_PREFIX}`)) await run('zfs', ['destroy', origin]).catch(() => undefined);
    await fs.promises.rmdir(vol.path).catch(() => undefined);
  }

  async usage(vol: StoredVolume): Promise<VolumeUsage> {
    const ds = typeof vol.data.dataset === 'string' ? vol.data.dataset : this.dataset(vol.id);
    const out = await run('zfs', ['get', '-Hp', '-o', 'value', 'referenced,refquota', ds]);
    const [referenced, refquota] = out.trim().split('\n').map((v) => Number(v) || 0);
    // ZFS reports files = used + free inodes per dataset, so the difference is this dataset's inode count.
    let inodes = 0;
    try {
      const st = await fs.promises.statfs(vol.path);
      inodes = Math.max(0, st.files - st.ffree);
    } catch {
      /* not mounted: size is still known */
    }
    return { size: referenced, inodes, limit: refquota || vol.sizeLimit, method: 'dataset' };
  }

  status(): Record<string, string> {
    return { backend: 'zfs dataset', parent: this.parent, root: this.volumesRoot };
  }
}
