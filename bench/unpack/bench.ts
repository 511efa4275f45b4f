/**
 * The unpack benchmark: a realistic three-layer image made locally from this machine's files (a base of
 * man pages, headers, Python and Perl libraries, zoneinfo; an app layer of /usr/sbin; an app layer of this
 * project's node_modules; ~690 MB, 46k entries), gzip and zstd variants, built once under the work dir.
 *
 * For each filesystem (`--fs` / STRATA_BENCH_FS, default ext4,btrfs,zfs; `host` also; see fs.ts): a loopback
 * ext4, a loopback btrfs, a zfs-fuse pool, each set up for its pass and torn down after it, also on failure. On each,
 * side by side, medians of several cold runs (fresh target each time, every layer synced before the clock stops;
 * an untimed warm-up apply first, so the one-time costs of a new filesystem and of reading the layer blobs from
 * disk do not all land on whichever contender runs first):
 *   strata `snapctl apply` (one process per layer, like tar) into a directory on it;
 *   strata's daemon path (Layers.Unpack) with that filesystem's drivers, a fresh daemon per driver and
 *     compression so its VmHWM is that driver's peak: ext4 and host overlay, native; btrfs btrfs, overlay; zfs zfs;
 *   GNU tar -xzf / --zstd -xf (+ sync -f) into a directory on it;
 *   containerd 1.6 `ctr image import` (overlayfs snapshotter, its root on that filesystem; content ingest
 *     measured separately with --no-unpack); skipped with the kernel's reason where overlayfs refuses the
 *     filesystem as upper dir (zfs-fuse);
 *   on ext4 and host only, `snapctl import` of the whole OCI archive through a fresh overlay daemon.
 * Prints times, MB/s, entries/s, peak RSS, the ratios against issue 3's targets, and where the daemon's time
 * goes per driver. Run: `node dist/bench/unpack/bench.js [--fs ext4,btrfs,zfs,host]` as root.
 * STRATA_BENCH_RUNS (3), STRATA_BENCH_DIR (/var/tmp/strata-bench-unpack), STRATA_BENCH_SKIP (comma list of
 * containerd, daemon, import, or a driver name), STRATA_BENCH_SMALL=1 (~27 MB of small trees: a smoke test).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { cleanupStale } from '../../test/helpers/backends';
import { Containerd, findContainerd, type Binaries } from '../../test/helpers/containerd';
import { DEFAULT_FS, FS_KINDS, fsMissing, hasImportRow, setupFs, type BenchFs, type FsKind } from './fs';
import { buildLayers, COMPS, imageName, writeOciArchive, type Comp, type Layer } from './layers';
import { render, type Row, type Section } from './report';
import { applyRun, DaemonSeries, importRun, settle, tarRun } from './runners';

const RUNS = Number(process.env.STRATA_BENCH_RUNS ?? 3);
const WORK = process.env.STRATA_BENCH_DIR ?? '/var/tmp/strata-bench-unpack';
const SKIP = new Set((process.env.STRATA_BENCH_SKIP ?? '').split(',').filter(Boolean));
const SMALL = process.env.STRATA_BENCH_SMALL === '1';

const log = (s: string): void => void process.stderr.write(`# ${s}\n`);

/**
 * Ctrl-C / SIGTERM stop the run at the next step and let the finally blocks tear the filesystems down (a second
 * signal exits at once; test/helpers' cleanupStale() at the next start removes what that leaves).
 */
let stopSignal: NodeJS.Signals | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopSignal) process.exit(130);
    stopSignal = sig;
    log(`${sig}: stopping after the current step, then tearing down (again to exit at once)`);
  });
}

function checkStop(): void {
  if (stopSignal) throw new Error(`interrupted by ${stopSignal}`);
}

function fsList(): FsKind[] {
  const { values } = parseArgs({ options: { fs: { type: 'string' } } });
  const list = (values.fs ?? process.env.STRATA_BENCH_FS ?? DEFAULT_FS.join(',')).split(',').map((s) => s.trim()).filter(Boolean);
  for (const k of list) if (!FS_KINDS.includes(k as FsKind)) throw new Error(`unknown filesystem "${k}" (known: ${FS_KINDS.join(', ')})`);
  return list as FsKind[];
}

interface Inputs {
  layers: Layer[];
  /** OCI archives on the host fs, by compression (for containerd and snapctl import). */
  archives: Record<Comp, string>;
  bins: Binaries | string;
}

/** Every row of one filesystem; containerd and the daemons are stopped before it returns or throws. */
async function benchFs(bfs: BenchFs, inp: Inputs, section: Section): Promise<void> {
  let ctrd: Containerd | undefined;
  const ctrTool = 'containerd 1.6 ctr import (overlayfs)';
  try {
    if (SKIP.has('containerd')) section.skipped.push(`${ctrTool}: STRATA_BENCH_SKIP`);
    else if (typeof inp.bins === 'string') section.skipped.push(`${ctrTool}: ${inp.bins}`);
    else if ('skip' in bfs.containerd) section.skipped.push(`${ctrTool}: ${bfs.containerd.skip}`);
    else ctrd = await Containerd.start({ bins: inp.bins, dir: bfs.containerd.dir, strataAddress: path.join(bfs.containerd.dir, 'none.sock') });

    for (const comp of COMPS) {
      const daemons: DaemonSeries[] = [];
      let imp: DaemonSeries | undefined;
      try {
        for (const d of bfs.drivers) {
          if (!SKIP.has('daemon') && !SKIP.has(d)) daemons.push(await DaemonSeries.start(bfs.daemon(d, comp)));
        }
        if (hasImportRow(bfs.kind) && !SKIP.has('import')) imp = await DaemonSeries.start(bfs.daemon('overlay', `import-${comp}`));
        const r = { apply: [] as number[], tar: [] as number[], ctr: [] as number[], ingest: [] as number[], imp: [] as number[] };
        const rss = { apply: 0, tar: 0, impClient: 0 };
        // Untimed: a fresh filesystem allocates its first block groups, and the blobs come from disk once. Before
        // this, the first apply run of a pass was 2-2.5 s slower than the others (9.4-9.9 s vs 6.7-7.8 s, gzip).
        checkStop();
        await applyRun(inp.layers, comp, bfs.targets);
        for (let run = 0; run < RUNS; run++) {
          checkStop();
          const a = await applyRun(inp.layers, comp, bfs.targets);
          r.apply.push(a.ms);
          rss.apply = Math.max(rss.apply, a.rssKb);
          const t = await tarRun(inp.layers, comp, bfs.targets);
          r.tar.push(t.ms);
          rss.tar = Math.max(rss.tar, t.rssKb);
          for (const d of daemons) {
            checkStop();
            await d.unpackRun(inp.layers, comp, run, run === RUNS - 1);
          }
          checkStop();
          if (ctrd) {
            const ns = `bench-${comp}-${run}`;
            const archive = inp.archives[comp];
            const t0 = performance.now();
            await ctrd.ctrOk(['image', 'import', '--snapshotter', 'overlayfs', archive], { namespace: ns, timeoutMs: 900_000 });
            r.ctr.push(performance.now() - t0);
            const t1 = performance.now();
            await ctrd.ctrOk(['image', 'import', '--no-unpack', archive], { namespace: `${ns}-ingest`, timeoutMs: 900_000 });
            r.ingest.push(performance.now() - t1);
            await ctrd.ctr(['image', 'rm', '--sync', imageName(comp)], { namespace: ns, timeoutMs: 300_000 });
            await ctrd.ctr(['image', 'rm', '--sync', imageName(comp)], { namespace: `${ns}-ingest` });
            if ('dir' in bfs.containerd) settle(bfs.containerd.dir);
          }
          if (imp) {
            const x = await importRun(imp, inp.layers, inp.archives[comp]);
            r.imp.push(x.ms);
            rss.impClient = Math.max(rss.impClient, x.rssKb);
          }
          log(`${bfs.kind} ${comp} run ${run + 1}/${RUNS} done`);
        }
        const rows: Row[] = [{ kind: 'apply', tool: 'strata snapctl apply', comp, ms: r.apply, rssKb: rss.apply }];
        for (const d of daemons) {
          const ms = d.runs.map((u) => u.wallMs);
          rows.push({ kind: 'daemon', tool: `strata daemon Unpack (${d.driver})`, comp, ms, rssKb: d.hwm(), driver: d.driver, unpacks: d.runs, snapshotOpsMs: d.snapshotOpsMs });
        }
        if (imp) rows.push({ kind: 'import', tool: 'strata snapctl import (whole image)', comp, ms: r.imp, rssKb: imp.hwm(), clientRssKb: rss.impClient });
        rows.push({ kind: 'tar', tool: comp === 'gzip' ? 'GNU tar -xzf' : 'GNU tar --zstd -xf', comp, ms: r.tar, rssKb: rss.tar });
        if (r.ctr.length) {
          rows.push({ kind: 'ctr', tool: ctrTool, comp, ms: r.ctr, rssKb: 0 });
          rows.push({ kind: 'ingest', tool: '  of which content ingest (--no-unpack)', comp, ms: r.ingest, rssKb: 0 });
        }
        section.rows.push(...rows);
      } finally {
        for (const d of [...daemons, ...(imp ? [imp] : [])]) await d.dispose().catch((e: unknown) => log(`daemon teardown: ${String(e)}`));
      }
    }
  } finally {
    await ctrd?.destroy();
  }
}

async function main(): Promise<number> {
  const kinds = fsList();
  if (process.getuid?.() !== 0) throw new Error('run as root: the benchmark mounts filesystems');
  for (const r of await cleanupStale()) log(`removed a leftover of a killed run: ${r}`);
  fs.mkdirSync(WORK, { recursive: true });
  const layers = buildLayers(WORK, SMALL);
  const totals = { bytes: layers.reduce((a, l) => a + l.bytes, 0), entries: layers.reduce((a, l) => a + l.entries, 0) };
  const archives = { gzip: path.join(WORK, 'image-gzip.tar'), zstd: path.join(WORK, 'image-zstd.tar') };
  const bins = findContainerd('1.6');
  if ((typeof bins !== 'string' && !SKIP.has('containerd')) || (kinds.some(hasImportRow) && !SKIP.has('import'))) {
    for (const comp of COMPS) writeOciArchive(WORK, layers, comp, archives[comp]);
  }
  process.stdout.write(
    `layers: ${layers.length}${SMALL ? ' (STRATA_BENCH_SMALL)' : ''}, ${(totals.bytes / 1e6).toFixed(0)} MB uncompressed, ${totals.entries} entries; ` +
      `filesystems: ${kinds.join(', ')}; ${RUNS} run(s) each${typeof bins === 'string' ? '' : `; ${bins.version}`}\n`,
  );

  const sections: Section[] = [];
  let failed = false;
  for (const kind of kinds) {
    if (stopSignal) break;
    const section: Section = { title: kind, rows: [], skipped: [] };
    sections.push(section);
    const missing = await fsMissing(kind);
    if (missing) {
      section.skipped.push(`the whole filesystem: ${missing}`);
      continue;
    }
    let bfs: BenchFs | undefined;
    try {
      bfs = await setupFs(kind, WORK);
      section.title = `${kind} (${bfs.type}), targets in ${bfs.targets}`;
      log(`${kind}: set up on ${bfs.type}`);
      await benchFs(bfs, { layers, archives, bins }, section);
    } catch (e) {
      failed = true;
      section.skipped.push(`FAILED: ${e instanceof Error ? e.message : String(e)}`);
      log(`${kind}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    } finally {
      await bfs?.teardown().catch((e: unknown) => {
        failed = true;
        section.skipped.push(`teardown FAILED: ${String(e)}`);
      });
    }
  }
  process.stdout.write(render(sections, totals));
  return failed || stopSignal ? 1 : 0;
}

main().then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
