/**
 * Runs a body of tests once per driver in test/helpers/drivers.ts against a real daemon over its socket, plus
 * the snapshot helpers the suites share: write a layer through real mounts, read a snapshot's tree, compute
 * the expected tree from the same operations on a plain directory.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { grpcCodeName, type SnapshotsApiClient } from '../../src/client/snapshots';
import type { Info, Labels, Mount } from '../../src/core/types';
import { native } from '../../native/index';
import { Daemon } from '../helpers/daemon';
import { selectedDrivers, type DriverEntry, type DriverTarget } from '../helpers/drivers';
import { snapshotTree, type Tree } from '../helpers/tree';
import { applyOps, type FsOp } from './fsops';
import { unmountAllBelow, withMounted } from './mount';

let keySeq = 0;

/** A key shaped like containerd's: namespace, a counter, a name with spaces and a digest-like suffix. */
export function ckey(tag: string): string {
  return `default/${++keySeq}/${tag}-${process.pid}-${randomBytes(3).toString('hex')} sha256:${randomBytes(32).toString('hex')}`;
}

/** A committed layer's name as containerd's unpacker writes it (a chain id). */
export function cname(): string {
  return `default/${++keySeq}/sha256:${randomBytes(32).toString('hex')}`;
}

export class DriverSuite {
  skipReason: string | undefined;
  daemon: Daemon | undefined;
  private target: DriverTarget | undefined;
  /** Mountpoints and expected trees live here. */
  readonly work: string;

  constructor(readonly entry: DriverEntry) {
    this.work = fs.mkdtempSync(path.join(os.tmpdir(), 'stw-'));
  }

  get client(): SnapshotsApiClient {
    return this.d.client;
  }

  get d(): Daemon {
    if (!this.daemon) throw new Error('no daemon');
    return this.daemon;
  }

  async setup(): Promise<void> {
    const t = await this.entry.setup();
    if ('skip' in t) {
      this.skipReason = t.skip;
      return;
    }
    this.target = t;
    this.daemon = await Daemon.start({ driver: this.entry.driver, root: t.root, driverConfig: t.config });
  }

  async teardown(): Promise<void> {
    const errors: string[] = [];
    await unmountAllBelow(this.work);
    if (this.daemon) {
      const st = await this.daemon.stop().catch((e: Error) => (errors.push(e.message), undefined));
      if (st && st.code !== 0) errors.push(`strata exited with ${st.code ?? st.signal} on SIGTERM:\n${this.daemon.tail()}`);
      await this.daemon.dispose().catch((e: Error) => errors.push(e.message));
    }
    if (this.target) {
      if (this.target.root) await unmountAllBelow(this.target.root);
      await this.target.teardown().catch((e: Error) => errors.push(e.message));
    }
    fs.rmSync(this.work, { recursive: true, force: true });
    if (errors.length) throw new Error(errors.join('\n'));
  }

  /** A test that skips with the backend's reason and shows the daemon's last log lines when it fails. */
  it(name: string, fn: (t: TestContext) => Promise<void>, opts: { timeout?: number } = {}): void {
    it(name, { timeout: opts.timeout ?? 120_000 }, async (t) => {
      if (this.skipReason) {
        t.skip(this.skipReason);
        return;
      }
      try {
        await fn(t);
      } catch (e) {
        // Errors from the daemon helper already carry its log.
        if (e instanceof Error && this.daemon && !e.message.includes(this.daemon.tail(1))) {
          e.message += `\n--- strata log (last lines):\n${this.daemon.tail(25)}`;
        }
        throw e;
      }
    });
  }

  // --- content helpers -----------------------------------------------------------------------------------

  async withMounts<T>(mounts: Mount[], fn: (dir: string) => Promise<T> | T): Promise<T> {
    return withMounted(mounts, this.work, fn);
  }

  /** Prepares key on parent and applies ops in its mounted tree; the snapshot stays active. */
  async prepareWith(key: string, parent: string, ops: FsOp[], labels: Labels = {}): Promise<Mount[]> {
    const mounts = await this.client.prepare(key, parent, labels);
    await this.withMounts(mounts, (dir) => applyOps(dir, ops));
    return mounts;
  }

  /** One layer: prepare on parent, apply ops, commit as a fresh name (returned). */
  async layer(parent: string, ops: FsOp[], name = cname(), labels: Labels = {}): Promise<string> {
    const key = ckey('extract');
    await this.prepareWith(key, parent, ops);
    await this.client.commit(name, key, labels);
    return name;
  }

  /** Whether the driver's storage keeps user xattrs (zfs-fuse without --enable-xattr does not). */
  async supportsXattrs(): Promise<boolean> {
    const key = ckey('xattr-probe');
    try {
      return await this.withMounts(await this.client.prepare(key, ''), (dir) => {
        try {
          // A round trip: some FUSE filesystems accept the set and then cannot list.
          native().lsetxattr(dir, 'user.strata.probe', Buffer.from('1'), 0);
          return native().llistxattr(dir).includes('user.strata.probe');
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'ENOTSUP' || code === 'EOPNOTSUPP') return false;
          throw e;
        }
      });
    } finally {
      await this.client.remove(key);
    }
  }

  /** The tree a snapshot shows: active through its own mounts, committed through a temporary view. */
  async treeOf(keyOrName: string): Promise<Tree> {
    const info = await this.client.stat(keyOrName);
    if (info.kind !== 'committed') return this.withMounts(await this.client.mounts(keyOrName), (dir) => snapshotTree(dir));
    const viaActive = this.entry.readCommittedVia === 'active';
    const view = ckey(viaActive ? 'reader' : 'view');
    const mounts = viaActive ? await this.client.prepare(view, keyOrName) : await this.client.view(view, keyOrName);
    try {
      return await this.withMounts(mounts, (dir) => snapshotTree(dir));
    } finally {
      await this.client.remove(view);
    }
  }

  /** The tree that applying every layer's ops to an empty 0755 directory gives. */
  expected(layers: FsOp[][]): Tree {
    const dir = fs.mkdtempSync(path.join(this.work, 'x-'));
    try {
      fs.chmodSync(dir, 0o755);
      for (const ops of layers) applyOps(dir, ops);
      return snapshotTree(dir);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Removes every snapshot, children first (as containerd's GC does), so a test starts from nothing. */
  async removeAll(): Promise<void> {
    for (let round = 0; round < 1000; round++) {
      const all = await this.client.list();
      if (all.length === 0) return;
      const parents = new Set(all.map((i) => i.parent));
      const leaves = all.filter((i) => !parents.has(i.name));
      if (leaves.length === 0) throw new Error(`no leaf among ${all.map((i) => i.name).join(', ')}`);
      for (const l of leaves) await this.client.remove(l.name);
    }
  }
}

/** describe() per selected driver, with the daemon up for the whole body. */
export function driverSuite(title: string, body: (s: DriverSuite) => void, filter?: (e: DriverEntry) => boolean): void {
  for (const entry of selectedDrivers(filter)) {
    describe(`${title} [${entry.label}]`, () => {
      const s = new DriverSuite(entry);
      before(() => s.setup(), { timeout: 120_000 });
      after(() => s.teardown(), { timeout: 120_000 });
      body(s);
    });
  }
}

/** Asserts that p rejects with the gRPC code and a non-empty message; returns the message. */
export async function expectCode(p: Promise<unknown>, code: string, what: string): Promise<string> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  if (err === undefined) throw new Error(`${what}: succeeded, expected ${code}`);
  const got = grpcCodeName(err);
  const details = (err as { details?: string }).details ?? '';
  if (got !== code) throw new Error(`${what}: got ${got ?? 'a non-gRPC error'} (${(err as Error).message}), expected ${code}`);
  if (!details.trim()) throw new Error(`${what}: ${code} without a message`);
  return details;
}

/** Info without the timestamps, for comparing lists before and after. */
export function comparable(infos: Info[]): Array<Omit<Info, 'created' | 'updated'> & { created: number; updated: number }> {
  return infos
    .map((i) => ({ ...i, created: i.created.getTime(), updated: i.updated.getTime() }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
