/**
 * Snapshot-operation benchmark: `node dist/bench/ops/run.js [--drivers overlay,native] [--quick] [--json FILE]`.
 *
 * For each driver it starts a real `strata serve` on a temp root, times Stat, Prepare+Commit, List(100) and
 * Remove of a 2000-file snapshot over the socket, measures the bare filesystem operations they need on the same
 * filesystem in the same run, and prints p50/p99 against the targets of issue 2.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { AdminApiClient } from '../../src/client/admin';
import { humanMicros, table } from '../../src/cli/format';
import { Daemon } from '../../test/helpers/daemon';
import { createExt4, createXfs, projectQuotaMissing } from '../../test/helpers/backends';
import { DRIVERS as TEST_DRIVERS, type DriverEntry } from '../../test/helpers/drivers';
import { measureBare, type BareResults } from './bare';
import { buildGoClient, GoClient, startNoopServer } from './goclient';
import { measureOps, measureOpsGo, measureRemove, measureRemoveGo, measureUsage, seed, type OpResults } from './ops';
import { summarize, type Summary } from './stats';

/**
 * The drivers benchmarked, by the test harness's labels (test/helpers/drivers.ts knows how to bring up each
 * backend: a loopback btrfs, a ZFS pool). Adding a driver is one entry here, e.g. 'btrfs' or 'zfs'.
 */
const BENCH_DRIVERS: readonly string[] = ['overlay', 'native', 'btrfs', 'zfs'];

/**
 * overlay on a loopback XFS (prjquota) or ext4 (project feature): Usage answered from project-quota accounting
 * (issue 4). Not in the default list: this VM's kernel has no quota support, so they run inside the dm VM
 * (bench/ops/README.md has the command); elsewhere they are skipped with the kernel's reason.
 */
const QUOTA_ENTRIES: DriverEntry[] = (['xfs', 'ext4'] as const).map((kind) => ({
  label: `overlay on ${kind}`,
  driver: 'overlay',
  snapshotDirs: true,
  async setup() {
    const why = await projectQuotaMissing(kind);
    if (why) return { skip: `${why} (run it inside the dm VM, bench/ops/README.md)` };
    // ext4 has one inode per 16 KiB: 100k files and the seeded snapshots need a few GiB (sparse, disk only as used).
    const fsb = kind === 'xfs' ? await createXfs({ sizeMiB: 2048 }) : await createExt4({ sizeMiB: 4096 });
    return { root: path.join(fsb.mountpoint, 'strata'), config: {}, teardown: () => fsb.cleanup() };
  },
}));
const KNOWN: DriverEntry[] = [...TEST_DRIVERS, ...QUOTA_ENTRIES];

interface OpSpec {
  key: keyof OpResults;
  name: string;
  /** Judged on p50, like the targets in issue 2 are stated. */
  targetUs: number;
  bare: keyof BareResults;
  bareName: string;
}

const OPS: readonly OpSpec[] = [
  { key: 'stat', name: 'Stat', targetUs: 80, bare: 'statDir', bareName: 'stat(2) of a dir' },
  { key: 'prepareCommit', name: 'Prepare+Commit', targetUs: 1600, bare: 'mkdirRename', bareName: 'mkdir+mkdir+rename+fdatasync' },
  { key: 'list100', name: 'List (100)', targetUs: 500, bare: 'readdir100', bareName: 'readdir of 100' },
  { key: 'remove2000', name: 'Remove (2000 files)', targetUs: 5000, bare: 'rmTree2000', bareName: 'rm -rf of 2000 files' },
  // Issue 4: Usage from quota accounting, ≤ 1 ms for a snapshot with 100k files.
  { key: 'usage100k', name: 'Usage (100k files)', targetUs: 1000, bare: 'walk100k', bareName: 'lstat walk of 100k' },
];

/** Who timed a row: the grpc-go client (what containerd sees) or the Node client tests use. */
export type ClientKind = 'go' | 'node';

export interface ResultRow {
  op: string;
  driver: string;
  client: ClientKind;
  targetP50Us: number;
  met: boolean;
  strata: Summary;
  bareOp: string;
  bare: Summary;
}

interface DriverOutcome {
  driver: string;
  skipped?: string;
  rows: ResultRow[];
  /** A do-nothing grpc-go call (Go client → Go server in its own process), measured beside this driver's rows. */
  noopGo?: Summary;
}

const COUNTS = {
  full: { stat: 3000, prepareCommit: 300, list: 500, remove: 10, usage: 30 },
  quick: { stat: 500, prepareCommit: 50, list: 100, remove: 3, usage: 5 },
};

async function benchDriver(entry: DriverEntry, quick: boolean, goBin: string | undefined, log: (s: string) => void): Promise<DriverOutcome> {
  const target = await entry.setup();
  if ('skip' in target) return { driver: entry.label, skipped: target.skip, rows: [] };
  let daemon: Daemon | undefined;
  try {
    daemon = await Daemon.start({ driver: entry.driver, root: target.root, driverConfig: target.config, logLevel: 'warn' });
    const admin = new AdminApiClient(daemon.address);
    const n = quick ? COUNTS.quick : COUNTS.full;
    const noopSocket = path.join(path.dirname(daemon.address), 'noop.sock');
    const noop = goBin ? await startNoopServer(goBin, noopSocket) : undefined;
    const go = goBin ? GoClient.start(goBin, daemon.address, noopSocket) : undefined;
    try {
      await seed(daemon.client);
      log(`${entry.label}: snapshot operations over ${daemon.address} (Node client)`);
      const nodeOps = await measureOps(daemon.client, admin, n);
      const goOps = go ? (log(`${entry.label}: snapshot operations over ${daemon.address} (Go client)`), await measureOpsGo(go, daemon.client, admin, n)) : undefined;
      log(`${entry.label}: Usage of a snapshot holding 100k files`);
      const usage = await measureUsage(daemon.client, admin, go, n);
      log(`${entry.label}: Remove of 2000-file snapshots`);
      const nodeRm = await measureRemove(daemon.client, admin, n);
      const goRm = go ? await measureRemoveGo(go, daemon.client, admin, n) : undefined;
      const ops: Partial<Record<ClientKind, OpResults>> = { node: { ...nodeOps, usage100k: usage.node, remove2000: nodeRm } };
      if (goOps && usage.go && goRm) ops.go = { ...goOps, usage100k: usage.go, remove2000: goRm };
      const noopGo = go ? summarize(await go.run('noop', n.stat, 200)) : undefined;
      log(`${entry.label}: bare filesystem operations`);
      // Beside the daemon's root: the same filesystem, outside the driver's directories.
      const bare = await measureBare(path.join(path.dirname(daemon.root), `bare-${process.pid}`), {
        stat: n.stat,
        mkdirRename: n.prepareCommit,
        readdir: n.list,
        // rm -rf of 2000 files takes seconds on a busy ext4; a few samples show the order of magnitude.
        rmTree: Math.min(n.remove, 5),
        walk: 3,
      });
      const method = usage.method;
      const rows: ResultRow[] = [];
      for (const o of OPS) {
        for (const client of ['go', 'node'] as const) {
          const samples = ops[client]?.[o.key];
          if (!samples) continue;
          const strata = summarize(samples);
          rows.push({ op: o.key === 'usage100k' ? `Usage (100k, ${method})` : o.name, driver: entry.label, client, targetP50Us: o.targetUs, met: strata.p50 <= o.targetUs, strata, bareOp: o.bareName, bare: summarize(bare[o.bare]) });
        }
      }
      return { driver: entry.label, rows, noopGo };
    } finally {
      go?.close();
      noop?.stop();
      admin.close();
    }
  } catch (e) {
    const tail = daemon ? `\n${daemon.tail(20)}` : '';
    throw new Error(`${entry.label}: ${(e as Error).message}${tail}`, { cause: e });
  } finally {
    await daemon?.dispose();
    await target.teardown();
  }
}

export function render(outcomes: readonly DriverOutcome[]): string {
  const rows: string[][] = [];
  for (const o of outcomes) {
    for (const r of o.rows) {
      rows.push([
        r.op,
        r.driver,
        r.client,
        humanMicros(r.strata.p50),
        humanMicros(r.strata.p99),
        `≤ ${humanMicros(r.targetP50Us)}`,
        r.met ? 'yes' : 'NO',
        r.bareOp,
        humanMicros(r.bare.p50),
        humanMicros(r.bare.p99),
        `${(r.strata.p50 / r.bare.p50).toFixed(1)}×`,
      ]);
    }
  }
  let out = table(['OPERATION', 'DRIVER', 'CLIENT', 'P50', 'P99', 'TARGET (P50)', 'MET', 'BARE FS OPERATION', 'BARE P50', 'BARE P99', 'STRATA/BARE'], rows);
  for (const o of outcomes) if (o.skipped) out += `${o.driver}: skipped (${o.skipped})\n`;
  const floors = outcomes.filter((o) => o.noopGo).map((o) => [`do-nothing grpc-go call (beside ${o.driver})`, humanMicros(o.noopGo!.p50), humanMicros(o.noopGo!.p99)]);
  if (floors.length) out += `\n${table(['FLOOR OF ONE CALL (Go client → Go server, own processes)', 'P50', 'P99'], floors)}`;
  return out;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      drivers: { type: 'string' },
      quick: { type: 'boolean' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`usage: node dist/bench/ops/run.js [--drivers ${BENCH_DRIVERS.join(',')}] [--quick] [--json FILE]\n`);
    return 0;
  }
  const wanted = values.drivers ? values.drivers.split(',').map((s) => s.trim()) : [...BENCH_DRIVERS];
  const entries = wanted.map((label) => {
    const e = KNOWN.find((d) => d.label === label);
    if (!e) throw new Error(`unknown driver "${label}" (known: ${KNOWN.map((d) => d.label).join(', ')})`);
    return e;
  });
  const log = (s: string): void => void process.stderr.write(`# ${s}\n`);
  // STRATA_BENCH_GO=0: Node client only (inside the dm VM, building grpc-go under emulation takes many minutes).
  const built = process.env.STRATA_BENCH_GO === '0' ? { missing: 'STRATA_BENCH_GO=0' } : buildGoClient();
  if ('missing' in built) log(`Go client rows skipped: ${built.missing} (scripts/bench.sh installs both)`);
  const goBin = 'bin' in built ? built.bin : undefined;
  const outcomes: DriverOutcome[] = [];
  // 100k files in one snapshot need more than the test suites' small pools (sparse images: disk only as used).
  process.env.STRATA_BACKEND_MIB ??= '4096';
  try {
    for (const e of entries) {
      try {
        outcomes.push(await benchDriver(e, values.quick ?? false, goBin, log));
      } catch (err) {
        // One driver's failure must not cost the others' figures: report it as that driver's row.
        log(`${e.label}: FAILED: ${(err as Error).message}`);
        outcomes.push({ driver: e.label, skipped: `FAILED: ${(err as Error).message.split('\n')[0]}`, rows: [] });
      }
    }
  } finally {
    if (goBin) fs.rmSync(goBin, { force: true });
  }

  process.stdout.write(render(outcomes));
  if (values.json) {
    const doc = {
      benchmark: 'strata snapshot operations',
      date: new Date().toISOString(),
      machine: { node: process.version, kernel: os.release(), cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? '' },
      quick: values.quick ?? false,
      unit: 'microseconds',
      results: outcomes.flatMap((o) => o.rows),
      floors: outcomes.filter((o) => o.noopGo).map((o) => ({ driver: o.driver, doNothingGrpcGoCall: o.noopGo })),
      skipped: outcomes.filter((o) => o.skipped).map((o) => ({ driver: o.driver, reason: o.skipped })),
    };
    fs.writeFileSync(values.json, JSON.stringify(doc, null, 2) + '\n');
    log(`results written to ${values.json}`);
  }
  return outcomes.some((o) => o.skipped?.startsWith('FAILED') || o.rows.some((r) => !r.met)) ? 1 : 0;
}

if (require.main === module) {
  main().then(
    (code) => (process.exitCode = code),
    (e: unknown) => {
      process.stderr.write(`bench/ops: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 2;
    },
  );
}
