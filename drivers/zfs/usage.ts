/**
 * The `used` property of the driver's datasets without a `zfs` process per Usage call. A spawn costs ~5–10 ms
 * (zfs-fuse or the kernel module alike), and kubelet/containerd ask every container's Usage every ~10 s.
 *
 * One `zfs get -r -d 1 used <parent>` reads every dataset at once; Usage calls arriving together share it. A cached
 * figure is answered again only while a statfs(2) of the mounted dataset (µs; ~55 µs through FUSE) shows the same
 * referenced bytes and object count it showed when the figure was read: ZFS moves those together with `used`
 * when a transaction group lands, so an unchanged probe means an unchanged dataset. The one change it cannot see
 * (a rewrite in place, same size) is bounded by maxAgeMs: an older figure is answered once more and refreshed in
 * the background. ZFS itself publishes `used` only when a transaction group syncs (~5 s), so the property a
 * fresh `zfs get` returns is no more current than this.
 */
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { internal } from '../../src/core/errors';
import { runZfs } from './exec';

interface Listing {
  started: number;
  done: Promise<Map<string, number>>;
}

interface Entry {
  used: number;
  /** statfs of the mount taken before the listing that read `used` started. */
  probe: string;
  at: number;
}

export class DatasetUsedCache {
  private readonly entries = new Map<string, Entry>();
  private latest: Listing | undefined;
  /** `zfs get` processes started, for tests and `snapctl info`. */
  listings = 0;

  constructor(
    /** The parent dataset whose direct children are listed. */
    private readonly parent: string,
    private readonly maxAgeMs = 30_000,
  ) {}

  /** `used` of dataset name, whose mount (or, unmounted, its empty mountpoint) is dir. */
  async used(name: string, dir: string): Promise<number> {
    const probe = await statfsProbe(dir);
    const now = performance.now();
    const e = this.entries.get(name);
    if (e !== undefined && probe !== undefined && e.probe === probe) {
      if (now - e.at > this.maxAgeMs) void this.read(name, probe, now).catch(() => undefined);
      return e.used;
    }
    return this.read(name, probe ?? '', now);
  }

  /** Drops a destroyed dataset's figure (ids are never reused, this only bounds the map). */
  forget(name: string): void {
    this.entries.delete(name);
  }

  private async read(name: string, probe: string, notBefore: number): Promise<number> {
    const listing = this.list(notBefore);
    const all = await listing.done;
    const used = all.get(name);
    if (used === undefined) {
      // Not below the parent (yet): ask for it alone, so the caller gets zfs's own error for a missing dataset.
      const out = await runZfs(['get', '-Hp', '-o', 'value', 'used', name]);
      return parseUsed(out.trim(), name);
    }
    const prev = this.entries.get(name);
    if (prev === undefined || prev.at <= listing.started) this.entries.set(name, { used, probe, at: listing.started });
    return used;
  }

  /** A listing started no earlier than notBefore: the one in flight if it qualifies, else a new one. */
  private list(notBefore: number): Listing {
    const l = this.latest;
    if (l !== undefined && l.started >= notBefore) return l;
    const started = performance.now();
    this.listings++;
    const done = runZfs(['get', '-Hp', '-r', '-d', '1', '-o', 'name,value', 'used', this.parent]).then((out) => {
      const m = new Map<string, number>();
      for (const line of out.split('\n')) {
        const tab = line.indexOf('\t');
        if (tab <= 0) continue;
        const ds = line.slice(0, tab);
        // -r lists the children's @committed snapshots too; their figures are not asked for.
        if (!ds.includes('@')) m.set(ds, parseUsed(line.slice(tab + 1), ds));
      }
      for (const k of this.entries.keys()) if (!m.has(k)) this.entries.delete(k);
      return m;
    });
    const listing = { started, done };
    this.latest = listing;
    done.catch(() => {
      if (this.latest === listing) this.latest = undefined;
    });
    return listing;
  }
}

function parseUsed(text: string, name: string): number {
  const n = Number(text);
  if (text === '' || !Number.isFinite(n)) throw internal(`zfs driver: unexpected used value ${JSON.stringify(text)} for ${name}`);
  return n;
}

/**
 * Referenced blocks and objects of the filesystem at dir, or undefined when it cannot be read. Asynchronous: a
 * statfs of a FUSE mount whose daemon stalls would otherwise stop the whole event loop.
 */
async function statfsProbe(dir: string): Promise<string | undefined> {
  try {
    const s = await fs.promises.statfs(dir);
    return `${s.type}:${s.bsize}:${s.blocks - s.bfree}:${s.files - s.ffree}`;
  } catch {
    return undefined;
  }
}
