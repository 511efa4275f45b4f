/**
 * Driver-level test harness: a driver on a fresh root, snapshot ids handed out like the metadata store does,
 * and mounts that are always undone (every mount a test makes is recorded and lifted in cleanup(), also after
 * a failed assertion).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Driver, DriverConfig, DriverName, SnapshotRef } from '../../drivers/driver';
import { loadDriverModule } from '../../drivers/index';
import { mountTemp, unmountAll } from '../../src/core/mount';
import type { Kind } from '../../src/core/types';
import { native } from '../../native/index';

export interface Harness {
  root: string;
  driver: Driver;
  /** A new snapshot on top of parent (a committed ref) or none. */
  create(kind: Exclude<Kind, 'committed'>, parent?: SnapshotRef, sizeLimit?: number): Promise<SnapshotRef>;
  commit(snap: SnapshotRef): Promise<SnapshotRef>;
  /** Mounts the snapshot's mounts on a temp dir (containerd-style); unmounted by unmount() or cleanup(). */
  mount(snap: SnapshotRef): Promise<string>;
  unmount(dir: string): Promise<void>;
  cleanup(): Promise<void>;
}

export async function createHarness(name: DriverName, opts: { root?: string; firstId?: number; config?: DriverConfig } = {}): Promise<Harness> {
  const root = opts.root ?? fs.mkdtempSync(path.join(os.tmpdir(), `strata-drv-${name}-`));
  const driver = loadDriverModule(name).create({ root, config: opts.config ?? {} });
  await driver.init();
  let nextId = opts.firstId ?? 1;
  const mounted = new Map<string, () => Promise<void>>();
  const mntBase = path.join(root, 'test-mnt');
  return {
    root,
    driver,
    async create(kind, parent, sizeLimit) {
      const ref: SnapshotRef = { id: nextId++, kind, parents: parent ? [parent.id, ...parent.parents] : [] };
      await driver.create(ref, sizeLimit === undefined ? {} : { sizeLimit });
      return ref;
    },
    async commit(snap) {
      await driver.commit(snap);
      return { ...snap, kind: 'committed' };
    },
    async mount(snap) {
      const m = await mountTemp(await driver.mounts(snap), mntBase, `s${snap.id}-`);
      mounted.set(m.dir, m.release);
      return m.dir;
    },
    async unmount(dir) {
      const release = mounted.get(dir);
      mounted.delete(dir);
      if (release) await release();
    },
    async cleanup() {
      for (const [dir, release] of mounted) {
        await release().catch(async () => unmountAll(dir).catch(() => undefined));
      }
      mounted.clear();
      await driver.close();
      if (!opts.root) fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Writes an overlay whiteout (a 0/0 character device) at p, as an overlay-form applier does. */
export function whiteout(p: string): void {
  native().mknodat(-100, p, 0o20000 | 0o000, 0, 0);
}

/** Marks a directory opaque for overlay (trusted.overlay.opaque=y: the lower dirs' contents are hidden). */
export function opaque(p: string): void {
  native().lsetxattr(p, 'trusted.overlay.opaque', Buffer.from('y'), 0);
}

/** The errno code of a write attempt at p, or 'ok'. */
export function tryWrite(p: string): string {
  try {
    fs.writeFileSync(p, 'x');
    return 'ok';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
}

/** Relative paths of regular files and their contents below dir, for compact layering assertions. */
export function fileContents(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(path.join(dir, r));
      if (st.isDirectory()) walk(r);
      else if (st.isFile()) out[r] = fs.readFileSync(path.join(dir, r), 'utf8');
      else out[r] = `<${st.isSymbolicLink() ? 'symlink' : 'special'}>`;
    }
  };
  walk('');
  return out;
}
