/**
 * The snapshot operations over the socket, timed in the client the way containerd sees them: Stat, Prepare+Commit,
 * List of 100, and Remove of a snapshot holding 2000 files. Every call goes through strata's real gRPC socket.
 */
import * as fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AdminApiClient } from '../../src/client/admin';
import type { SnapshotsApiClient } from '../../src/client/snapshots';
import { fillTree } from './bare';
import type { GoClient } from './goclient';
import { sample, usSince } from './stats';

export interface OpCounts {
  stat: number;
  prepareCommit: number;
  list: number;
  remove: number;
  usage: number;
}

export interface OpResults {
  stat: number[];
  prepareCommit: number[];
  list100: number[];
  remove2000: number[];
  /** Usage of an active snapshot holding 100k files (issue 4: a 10-second stats loop must cost nothing). */
  usage100k: number[];
}

/** Files in the snapshot whose Usage is timed. */
export const USAGE_FILES = 100_000;

/** Labels like the ones containerd's unpacker sets, so rows have realistic JSON to encode and decode. */
function layerLabels(i: number): Record<string, string> {
  return {
    'containerd.io/snapshot.ref': `sha256:${i.toString(16).padStart(64, '0')}`,
    'containerd.io/snapshot/cri.layer-digest': `sha256:${(i * 7919).toString(16).padStart(64, '0')}`,
  };
}

/** Waits until the background reclaim has freed everything, so the next phase runs on a quiet disk. */
export async function waitReclaimed(admin: AdminApiClient, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await admin.status()).pendingReclaims > 0) {
    if (Date.now() > deadline) throw new Error('background reclaim did not finish in time');
    await sleep(20);
  }
}

/** 100 snapshots: a committed base and 99 committed layers on it, labelled like containerd's. */
export async function seed(c: SnapshotsApiClient): Promise<void> {
  await c.prepare('bench/base-a', '', layerLabels(0));
  await c.commit('bench/base', 'bench/base-a', layerLabels(0));
  for (let i = 1; i < 100; i++) {
    await c.prepare(`bench/l${i}-a`, 'bench/base', layerLabels(i));
    await c.commit(`bench/l${i}`, `bench/l${i}-a`, layerLabels(i));
  }
}

/** Prepares KEY on the base and fills its own layer directory (overlay's upperdir, native's tree), without a mount. */
async function preparedAndFilled(c: SnapshotsApiClient, admin: AdminApiClient, key: string, fill: (dir: string) => void): Promise<void> {
  await c.prepare(key, 'bench/base');
  const dir = (await admin.info(key, { skipUsage: true })).path;
  if (!dir || !fs.existsSync(dir)) throw new Error(`no layer path for ${key} (driver without host paths?)`);
  fill(dir);
}

async function preparedWith2000Files(c: SnapshotsApiClient, admin: AdminApiClient, key: string): Promise<void> {
  await preparedAndFilled(c, admin, key, (dir) => fillTree(dir));
  await waitReclaimed(admin);
}

/**
 * An active snapshot holding USAGE_FILES files, for the Usage samples; returns how the driver answers Usage
 * (quota, qgroup, dataset, walk...) as `snapctl info` reports it.
 */
async function preparedWith100kFiles(c: SnapshotsApiClient, admin: AdminApiClient, key: string): Promise<string> {
  await preparedAndFilled(c, admin, key, (dir) => fillTree(dir, USAGE_FILES, 1000, 16));
  // Let the filesystem settle before timing: zfs-fuse, for one, keeps a core busy for tens of seconds writing out
  // 100k new files, which slows every call of the run, not only Usage. Settled = the same figure 3 s running.
  let last = -1;
  for (let same = 0, i = 0; same < 3 && i < 120; i++) {
    const size = (await c.usage(key)).size;
    same = size === last ? same + 1 : 0;
    last = size;
    await new Promise((r) => setTimeout(r, 1000));
  }
  return (await admin.info(key)).usage?.method ?? 'unknown';
}

export type FastOps = Pick<OpResults, 'stat' | 'prepareCommit' | 'list100'>;

/** The operations timed by the Node client (src/client, the one tests use), on the seeded snapshots. */
export async function measureOps(c: SnapshotsApiClient, admin: AdminApiClient, n: OpCounts): Promise<FastOps> {
  const list100 = await sample(n.list, 50, async () => {
    const t0 = process.hrtime.bigint();
    const infos = await c.list();
    const us = usSince(t0);
    if (infos.length !== 100) throw new Error(`List returned ${infos.length} snapshots, expected 100`);
    return us;
  });

  const stat = await sample(n.stat, 200, async () => {
    const t0 = process.hrtime.bigint();
    await c.stat('bench/l50');
    return usSince(t0);
  });

  const prepareCommit = await sample(n.prepareCommit, 20, async (i) => {
    const key = `bench/pc${i}`;
    const t0 = process.hrtime.bigint();
    await c.prepare(`${key}-a`, 'bench/base', layerLabels(1000 + i));
    await c.commit(key, `${key}-a`, layerLabels(1000 + i));
    return usSince(t0);
  });
  for (let i = -20; i < n.prepareCommit; i++) await c.remove(`bench/pc${i}`);
  await waitReclaimed(admin);
  return { stat, prepareCommit, list100 };
}

/**
 * Remove of a 2000-file snapshot, Node client. Apart from the other operations because filling and freeing trees
 * leaves the disk busy for a while: both clients' Prepare+Commit samples are taken before any of this.
 */
export async function measureRemove(c: SnapshotsApiClient, admin: AdminApiClient, n: OpCounts): Promise<number[]> {
  return sample(n.remove, 1, async (i) => {
    const key = `bench/rm${i}`;
    await preparedWith2000Files(c, admin, key);
    const t0 = process.hrtime.bigint();
    await c.remove(key);
    const us = usSince(t0);
    await waitReclaimed(admin);
    return us;
  });
}

/**
 * Usage of an active snapshot holding 100k files, by both clients, after the List samples (the snapshot would be
 * the 101st); returns the samples and how the driver answered (quota, qgroup, dataset, walk...).
 */
export async function measureUsage(c: SnapshotsApiClient, admin: AdminApiClient, go: GoClient | undefined, n: OpCounts): Promise<{ node: number[]; go?: number[]; method: string }> {
  const method = await preparedWith100kFiles(c, admin, 'bench/usage');
  const node = await sample(n.usage, 3, async () => {
    const t0 = process.hrtime.bigint();
    await c.usage('bench/usage');
    return usSince(t0);
  });
  return { node, go: go ? await go.run('usage', 'bench/usage', n.usage, 3) : undefined, method };
}

/**
 * The same operations timed by the grpc-go client (what containerd sees); setup and cleanup go through the Node
 * client, untimed.
 */
export async function measureOpsGo(go: GoClient, c: SnapshotsApiClient, admin: AdminApiClient, n: OpCounts): Promise<FastOps> {
  const list100 = await go.run('list', n.list, 50, 100);
  const stat = await go.run('stat', 'bench/l50', n.stat, 200);
  const prepareCommit = await go.run('pc', 'bench/gpc', 'bench/base', n.prepareCommit, 20);
  for (let i = -20; i < n.prepareCommit; i++) await c.remove(`bench/gpc${i}`);
  await waitReclaimed(admin);
  return { stat, prepareCommit, list100 };
}

/** Remove of a 2000-file snapshot timed by the Go client (setup through the Node client). */
export async function measureRemoveGo(go: GoClient, c: SnapshotsApiClient, admin: AdminApiClient, n: OpCounts): Promise<number[]> {
  const remove2000: number[] = [];
  for (let i = 0; i < n.remove; i++) {
    const key = `bench/grm${i}`;
    await preparedWith2000Files(c, admin, key);
    remove2000.push(...(await go.run('rm', key)));
    await waitReclaimed(admin);
  }
  return remove2000;
}
