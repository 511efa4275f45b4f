/**
 * Crash safety: a Prepare/write/Commit/View/Remove workload runs against the daemon while a timer kill -9s it
 * at a random moment; the daemon restarts on the same root and the test checks, every time:
 *  - List is consistent: every parent exists, kinds are valid, List and Stat agree;
 *  - the snapshots are exactly those the test knows about, where the one call cut off by the crash either
 *    happened entirely or not at all;
 *  - every snapshot's content equals the tree its layers' operations give on a plain directory;
 *  - every active snapshot still takes writes;
 *  - after Cleanup, the disk holds storage for known snapshots only: `<root>/snapshots/<id>` directories and
 *    mounts, and the driver's subvolumes or datasets (DriverEntry.storage), compared by id with the daemon's.
 * A clean SIGTERM restart at the end must keep everything, timestamps and labels included.
 *
 * STRATA_CRASH_ITERATIONS sets the number of kills (default 30, 20 on zfs); STRATA_CRASH_SEED makes a run
 * repeatable.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AdminApiClient } from '../../src/client/admin';
import { grpcCodeName } from '../../src/client/snapshots';
import type { Info, Kind } from '../../src/core/types';
import { op, type FsOp } from '../conformance/fsops';
import { ckey, cname, comparable, driverSuite, type DriverSuite } from '../conformance/harness';
import { storageDirs, type DriverEntry } from '../helpers/drivers';
import { assertTreesEqual } from '../helpers/tree';

/**
 * Kills per driver when STRATA_CRASH_ITERATIONS is unset: each keeps the suite within about 3 minutes per driver
 * on this 2-core machine. zfs-fuse spends ~100 ms on every `zfs` command and a restart remounts through FUSE, so
 * a zfs kill costs several times an overlay one.
 */
const DEFAULT_ITERATIONS: Partial<Record<DriverEntry['driver'], number>> = { zfs: 20 };

function iterations(e: DriverEntry): number {
  const env = process.env.STRATA_CRASH_ITERATIONS;
  return env ? Number(env) : (DEFAULT_ITERATIONS[e.driver] ?? 30);
}

/** mulberry32: a tiny seeded PRNG, so a failing run can be replayed with its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Snap {
  name: string;
  kind: Kind;
  parent: string;
  /** The operations of every layer from the bottom, own layer last: the snapshot's expected content. */
  chain: FsOp[][];
}

type Pending =
  | { type: 'create'; key: string; kind: 'active' | 'view'; parent: string; chain: FsOp[][] }
  | { type: 'commit'; key: string; name: string }
  | { type: 'remove'; name: string };

/** Thrown out of the workload when a call failed because the daemon was killed under it. */
class Crashed extends Error {}

class Workload {
  readonly model = new Map<string, Snap>();
  pending: Pending | undefined;
  /** Where the kills landed (the call they cut off), and how many calls completed: the run's coverage. */
  readonly cutOff = new Map<string, number>();
  calls = 0;
  private killed = false;
  private n = 0;

  constructor(
    private readonly s: DriverSuite,
    private readonly rand: () => number,
  ) {}

  private pick<T>(xs: T[]): T {
    return xs[Math.floor(this.rand() * xs.length)]!;
  }

  /** Aimed kills: the kill fires this long after the start of the call with this index (in this run). */
  private aim: { call: number; delayMs: number } | undefined;
  private callsThisRun = 0;
  private killNow: () => void = () => undefined;

  /** Runs one RPC; a failure after the kill ends the workload, any other failure fails the test. */
  private async rpc<T>(p: Pending | undefined, fn: () => Promise<T>): Promise<T> {
    if (this.killed) throw new Crashed();
    if (this.aim && this.aim.call === this.callsThisRun++) setTimeout(this.killNow, this.aim.delayMs);
    this.pending = p;
    try {
      const r = await fn();
      this.pending = undefined;
      this.calls++;
      return r;
    } catch (e) {
      if (this.killed) throw new Crashed();
      throw new Error(`call failed without a crash (${grpcCodeName(e) ?? 'no gRPC code'}): ${(e as Error).message}`);
    }
  }

  private children(name: string): Snap[] {
    return [...this.model.values()].filter((x) => x.parent === name);
  }

  private layerOps(): FsOp[] {
    const i = ++this.n;
    const ops: FsOp[] = [op.file(`f${i}`, `layer ${i}`)];
    // Some bulk, so kills land inside driver work (native copies parents on Prepare) and background reclaim.
    const files = Math.floor(this.rand() * 20);
    if (files > 0) {
      ops.push(op.dir(`bulk${i}`));
      for (let j = 0; j < files; j++) ops.push(op.file(`bulk${i}/${j}`, Buffer.alloc(Math.floor(this.rand() * 64 * 1024), i % 251)));
    }
    if (this.rand() < 0.3) ops.push(op.file('shared', `rewritten by ${i}`));
    return ops;
  }

  /**
   * Runs operations until the kill cuts one off. The kill comes either at a wall-clock moment (it may land
   * between calls, while the test writes through its mounts) or aimed a few ms into a chosen call, so most kills
   * hit the daemon mid-call.
   */
  async run(kill: { afterMs: number } | { call: number; delayMs: number }): Promise<void> {
    const c = this.s.client;
    const d = this.s.d;
    this.killed = false;
    this.callsThisRun = 0;
    let fired = false;
    this.killNow = () => {
      if (fired) return;
      fired = true;
      this.killed = true;
      void d.kill();
    };
    this.aim = 'call' in kill ? kill : undefined;
    // The aimed kill's fallback: a run never outlives a few seconds.
    const timer = setTimeout(this.killNow, 'afterMs' in kill ? kill.afterMs : 5000);
    try {
      for (;;) {
        const committed = [...this.model.values()].filter((x) => x.kind === 'committed');
        const leaves = [...this.model.values()].filter((x) => this.children(x.name).length === 0);
        const r = this.rand();
        // Keep the population small (every snapshot's content is checked after each kill), so shrink it first.
        const busy = committed.length > 5 || this.model.size > 9;
        if (busy && leaves.length > 0 && r < 0.6) {
          const victim = this.pick(leaves);
          await this.rpc({ type: 'remove', name: victim.name }, () => c.remove(victim.name));
          this.model.delete(victim.name);
        } else if (r < 0.15 && committed.length > 0) {
          const parent = this.pick(committed);
          const key = ckey('view');
          await this.rpc({ type: 'create', key, kind: 'view', parent: parent.name, chain: parent.chain }, () => c.view(key, parent.name));
          this.model.set(key, { name: key, kind: 'view', parent: parent.name, chain: parent.chain });
        } else if (r < 0.25 && leaves.length > 0) {
          const victim = this.pick(leaves);
          await this.rpc({ type: 'remove', name: victim.name }, () => c.remove(victim.name));
          this.model.delete(victim.name);
        } else {
          // A layer: Prepare on a committed parent (or none), write through the mounts, Commit.
          const parent = committed.length > 0 && this.rand() < 0.8 ? this.pick(committed) : undefined;
          const base = parent?.chain ?? [];
          const key = ckey('extract');
          const mounts = await this.rpc({ type: 'create', key, kind: 'active', parent: parent?.name ?? '', chain: base }, () =>
            c.prepare(key, parent?.name ?? ''),
          );
          const ops = this.layerOps();
          const snap: Snap = { name: key, kind: 'active', parent: parent?.name ?? '', chain: [...base, ops] };
          // The write goes through the test's own mount, so it completes even if the daemon dies meanwhile.
          await this.s.withMounts(mounts, (dir) => {
            for (const o of ops) o.apply(dir);
          });
          this.model.set(key, snap);
          if (this.rand() < 0.2) continue; // leave it active: a container's writable layer
          const name = cname();
          await this.rpc({ type: 'commit', key, name }, () => c.commit(name, key));
          this.model.delete(key);
          this.model.set(name, { ...snap, name, kind: 'committed' });
        }
      }
    } catch (e) {
      if (!(e instanceof Crashed)) throw e;
      const where = this.pending?.type ?? 'between calls';
      this.cutOff.set(where, (this.cutOff.get(where) ?? 0) + 1);
    } finally {
      clearTimeout(timer);
    }
    assert.ok(await d.waitExit(10_000), 'the killed daemon exited');
  }

  /** Folds the call the crash cut off into the model: it happened entirely, or not at all. */
  reconcile(listed: Map<string, Info>): string[] {
    const problems: string[] = [];
    const p = this.pending;
    this.pending = undefined;
    if (p?.type === 'create' && listed.has(p.key)) {
      this.model.set(p.key, { name: p.key, kind: p.kind, parent: p.parent, chain: p.chain });
    } else if (p?.type === 'commit') {
      const hasName = listed.has(p.name);
      const hasKey = listed.has(p.key);
      if (hasName && hasKey) problems.push(`commit cut off: both key ${p.key} and name ${p.name} exist`);
      if (!hasName && !hasKey) problems.push(`commit cut off: neither key ${p.key} nor name ${p.name} exists`);
      if (hasName) {
        const snap = this.model.get(p.key)!;
        this.model.delete(p.key);
        this.model.set(p.name, { ...snap, name: p.name, kind: 'committed' });
      }
    } else if (p?.type === 'remove' && !listed.has(p.name)) {
      this.model.delete(p.name);
    }
    return problems;
  }
}

async function listMap(s: DriverSuite): Promise<Map<string, Info>> {
  return new Map((await s.client.list()).map((i) => [i.name, i]));
}

/** Everything the test knows must be on the daemon, exactly, with intact content. */
async function verify(s: DriverSuite, w: Workload, when: string): Promise<void> {
  const c = s.client;
  const listed = await listMap(s);
  const problems = w.reconcile(listed);

  for (const [name, info] of listed) {
    if (!['active', 'view', 'committed'].includes(info.kind)) problems.push(`${name}: kind ${info.kind}`);
    if (info.parent !== '') {
      const parent = listed.get(info.parent);
      if (!parent) problems.push(`${name}: parent ${info.parent} does not exist`);
      else if (parent.kind !== 'committed') problems.push(`${name}: parent ${info.parent} is ${parent.kind}`);
    }
    const st = await c.stat(name).catch((e: Error) => e);
    if (st instanceof Error) problems.push(`Stat ${name}: ${st.message}`);
    else if (JSON.stringify(comparable([st])) !== JSON.stringify(comparable([info]))) problems.push(`${name}: Stat and List disagree`);
    const known = w.model.get(name);
    if (!known) problems.push(`${name} (${info.kind}) exists but no acknowledged or cut-off call made it`);
    else if (known.kind !== info.kind || known.parent !== info.parent) {
      problems.push(`${name}: ${info.kind} on "${info.parent}", expected ${known.kind} on "${known.parent}"`);
    }
  }
  for (const name of w.model.keys()) if (!listed.has(name)) problems.push(`${name} was acknowledged but is gone`);
  assert.deepEqual(problems, [], `metadata after ${when}`);

  for (const snap of w.model.values()) {
    assertTreesEqual(await s.treeOf(snap.name), s.expected(snap.chain), `${snap.kind} ${snap.name} after ${when}`);
  }
  // An active snapshot stays writable whatever the crash cut off: a Commit killed after the driver made the layer
  // read-only but before the metadata said "committed" leaves an active that must still take writes (and a later
  // Commit must capture them). The probe is removed again, so the expected trees stay as they are.
  const unwritable: string[] = [];
  for (const snap of w.model.values()) {
    if (snap.kind !== 'active') continue;
    const err = await s
      .withMounts(await c.mounts(snap.name), (dir) => {
        fs.writeFileSync(path.join(dir, '.crash-probe'), 'x');
        fs.rmSync(path.join(dir, '.crash-probe'));
      })
      .then(
        () => undefined,
        (e: Error) => e.message,
      );
    if (err !== undefined) unwritable.push(`active ${snap.name} is not writable after ${when}: ${err}`);
  }
  assert.deepEqual(unwritable, [], `active snapshots after ${when}`);

  await c.cleanup();
  await checkStorage(s, listed, when);
}

/**
 * After Cleanup the disk holds storage for known snapshots only: `<root>/snapshots/<id>` directories and the
 * mounts below them, and for btrfs/zfs every subvolume or dataset. The daemon's ids come from the Admin service.
 * The only storage allowed to outlive its snapshot is what the driver keeps on purpose for a known snapshot (zfs
 * parks a removed parent's dataset while a clone of it lives).
 */
async function checkStorage(s: DriverSuite, listed: Map<string, Info>, when: string): Promise<void> {
  const admin = new AdminApiClient(s.d.address, 30_000);
  const known = new Map<number, string>();
  try {
    for (const name of listed.keys()) known.set((await admin.info(name, { skipUsage: true })).id, name);
  } finally {
    admin.close();
  }
  const scan = s.entry.storage ? await s.entry.storage(s.d.root, s.d.opts.driverConfig ?? {}) : storageDirs(s.d.root);
  const legit = (id: number, seen: Set<number>): boolean => {
    if (known.has(id)) return true;
    if (seen.has(id)) return false;
    seen.add(id);
    return (scan.keptBy.get(id) ?? []).some((k) => legit(k, seen));
  };
  const problems = [...scan.strays.map((x) => `${x}: not storage of any snapshot id`)];
  for (const id of scan.ids) {
    if (!legit(id, new Set())) problems.push(`id ${id} is unknown to the daemon but holds ${(scan.describe.get(id) ?? []).join(', ')}`);
  }
  for (const [id, name] of known) if (!scan.ids.has(id)) problems.push(`${name} (id ${id}) has no storage on disk`);
  assert.deepEqual(problems, [], `storage after Cleanup (${when})`);
}

driverSuite(
  'crash safety',
  (s) => {
    const ITERATIONS = iterations(s.entry);
    s.it(`kill -9 at random points, ${ITERATIONS} times; restart keeps everything`, async (t) => {
      const seed = Number(process.env.STRATA_CRASH_SEED ?? Date.now() % 1_000_000);
      t.diagnostic(`seed ${seed} (STRATA_CRASH_SEED=${seed} replays it)`);
      const rand = rng(seed);
      const w = new Workload(s, rand);
      try {
        for (let i = 0; i < ITERATIONS; i++) {
          const kill =
            rand() < 0.6
              ? { call: Math.floor(rand() * 6), delayMs: Math.floor(rand() * 25) }
              : { afterMs: Math.floor(rand() * (rand() < 0.7 ? 150 : 800)) };
          await w.run(kill);
          await s.d.restart();
          await verify(s, w, `kill ${i + 1} (${JSON.stringify(kill)})`);
        }
        t.diagnostic(`${w.calls} calls completed; kills cut off: ${JSON.stringify(Object.fromEntries(w.cutOff))}; ${w.model.size} snapshots at the end`);
        // A clean restart keeps everything as it was, labels and timestamps included.
        const before = comparable(await s.client.list());
        const st = await s.d.stop();
        assert.equal(st.code, 0, `SIGTERM exit status:\n${s.d.tail()}`);
        await s.d.restart();
        assert.deepEqual(comparable(await s.client.list()), before, 'List across a clean restart');
        await verify(s, w, 'a clean restart');
      } catch (e) {
        if (e instanceof Error) e.message += `\n(seed ${seed})`;
        throw e;
      }
      await s.removeAll();
      await s.client.cleanup();
    }, { timeout: 900_000 });
  },
  (e) => e.label === e.driver,
);
