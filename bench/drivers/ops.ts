/**
 * Driver-level operation latencies for btrfs (native ioctls vs the btrfs program) and ZFS, on the loopback
 * backends the tests use: Prepare (create on a committed parent), Commit, Usage, Remove. Not a test (nothing is
 * asserted): run `node dist/bench/drivers/ops.js [iterations]` as root. The daemon-level ops bench (bench/ops)
 * compares drivers through the daemon; this one isolates what each driver's own calls cost.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BACKEND_BASE, backendMissing, cleanupStale, createBtrfs, createZfsPool, uniqueName } from '../../test/helpers/backends';
import * as btrfs from '../../drivers/btrfs';
import * as zfs from '../../drivers/zfs';
import type { Driver, SnapshotRef } from '../../drivers/driver';

type Op = 'prepare' | 'commit' | 'usage' | 'remove';
const OPS: Op[] = ['prepare', 'commit', 'usage', 'remove'];

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

async function timed(f: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await f();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** A committed base layer with some files, then n rounds of prepare → write → commit → usage → remove. */
async function measure(d: Driver, fsOf: (id: number) => string, n: number): Promise<Record<Op, number[]>> {
  const out: Record<Op, number[]> = { prepare: [], commit: [], usage: [], remove: [] };
  await d.create({ id: 1, kind: 'active', parents: [] }, {});
  for (let i = 0; i < 200; i++) fs.writeFileSync(path.join(fsOf(1), `f${i}`), Buffer.alloc(4096, i));
  await d.commit({ id: 1, kind: 'committed', parents: [] });
  for (let i = 0; i < n; i++) {
    const id = 100 + i;
    const a: SnapshotRef = { id, kind: 'active', parents: [1] };
    out.prepare.push(await timed(() => d.create(a, {})));
    fs.writeFileSync(path.join(fsOf(id), 'layer'), Buffer.alloc(64 * 1024, 1));
    out.commit.push(await timed(() => d.commit({ ...a, kind: 'committed' })));
    out.usage.push(await timed(() => d.usage(a)));
    out.remove.push(await timed(() => d.remove(id)));
  }
  await d.remove(1);
  return out;
}

function report(label: string, r: Record<Op, number[]>, extra = ''): void {
  const cells = OPS.map((op) => `${op} ${pct(r[op], 50).toFixed(2)}/${pct(r[op], 90).toFixed(2)}`);
  console.log(`${label.padEnd(14)} ${cells.join('  ')}  (ms p50/p90)${extra}`);
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 30);
  await cleanupStale();
  if (!(await backendMissing('btrfs'))) {
    const b = await createBtrfs({ sizeMiB: 512 });
    try {
      for (const ops of ['ioctl', 'cli'] as const) {
        const root = path.join(b.mountpoint, `root-${ops}`);
        const d = btrfs.create({ root, config: { ops } });
        await d.init();
        const r = await measure(d, (id) => path.join(root, 'snapshots', String(id), 'fs'), n);
        report(`btrfs ${ops}`, r, `  usage via ${(await d.status())['usage_method']}`);
        await d.close();
      }
    } finally {
      await b.cleanup();
    }
  } else console.log('btrfs: skipped');
  if (!(await backendMissing('zfs'))) {
    const p = await createZfsPool({ sizeMiB: 256 });
    const root = path.join(BACKEND_BASE, uniqueName('zfsbench'));
    try {
      const d = zfs.create({ root, config: { dataset: p.dataset } });
      await d.init();
      const r = await measure(d, (id) => path.join(root, 'snapshots', String(id), 'fs'), Math.min(n, 20));
      report('zfs (fuse)', r);
      await d.close();
    } finally {
      await p.cleanup();
      fs.rmSync(root, { recursive: true, force: true });
    }
  } else console.log('zfs: skipped');
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
