/**
 * How strata makes an applied layer durable, measured: `snapctl apply --sync syncfs` (one syncfs(2) of the
 * target filesystem after the layer: the default), `--sync fsync` (an fsync per regular file as it is closed) and
 * `--sync none` (the cost of the apply alone), on the benchmark's layers, gzip, medians of STRATA_BENCH_RUNS cold
 * runs into the work directory's filesystem. Run: `node dist/bench/unpack/sync-modes.js` (after bench.js built
 * the layers, or it builds them).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildLayers } from './layers';
import { median } from './report';
import { applyRun, type SyncMode } from './runners';

const RUNS = Number(process.env.STRATA_BENCH_RUNS ?? 3);
const WORK = process.env.STRATA_BENCH_DIR ?? '/var/tmp/strata-bench-unpack';

async function main(): Promise<void> {
  const layers = buildLayers(WORK, process.env.STRATA_BENCH_SMALL === '1');
  const targets = path.join(WORK, 'targets-sync');
  fs.mkdirSync(targets, { recursive: true });
  const modes: SyncMode[] = ['syncfs', 'fsync', 'none'];
  const ms: Record<SyncMode, number[]> = { syncfs: [], fsync: [], none: [] };
  try {
    // Interleaved, so drift of the machine's load spreads over all modes alike.
    for (let run = 0; run < RUNS; run++) {
      for (const m of modes) ms[m].push((await applyRun(layers, 'gzip', targets, m)).ms);
      process.stderr.write(`run ${run + 1}/${RUNS} done\n`);
    }
  } finally {
    fs.rmSync(targets, { recursive: true, force: true });
  }
  const none = median(ms.none);
  process.stdout.write(`snapctl apply of ${layers.length} gzip layers, ${RUNS} runs each (median, then every run)\n`);
  for (const m of modes) {
    const med = median(ms[m]);
    const cost = m === 'none' ? '' : `  durability costs ${((med - none) / 1000).toFixed(2)} s (${(((med - none) / none) * 100).toFixed(0)} %)`;
    process.stdout.write(`  --sync ${m.padEnd(6)} ${(med / 1000).toFixed(2).padStart(7)} s   ${ms[m].map((x) => (x / 1000).toFixed(2)).join(' ')}${cost}\n`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
