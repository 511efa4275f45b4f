/**
 * devmapper next to overlay, measured in the same run on the same kernel: a real `strata serve` per driver,
 * driven over its socket like containerd would. Meant to run inside the dm VM (software emulation: absolute
 * figures are 10-30x real hardware; the devmapper/overlay ratio is the figure to read):
 *
 *   ../shared/dm-vm/dm-vm-run.sh "$PWD" -- node dist/bench/devmapper/bench.js [--n 8] [--files 2000]
 *
 * Samples (wall clock, p50 and max over n):
 *   prepare-base   Prepare with no parent (devmapper: create_thin + mkfs + tidy mount)
 *   prepare-child  Prepare on a committed layer (devmapper: create_snap + activate)
 *   commit         Commit of an active snapshot that wrote one file (devmapper: measure + deactivate)
 *   remove         Remove of an active snapshot, then Cleanup until its storage is gone
 *   unpack         Prepare on the base, mount, apply a gzip layer of --files files (~4 KiB each), unmount, Commit
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { mountAll, unmountAll } from '../../src/core/mount';
import { applyLayer } from '../../src/unpack/engine';
import { Daemon } from '../../test/helpers/daemon';
import { gzip, TarBuilder } from '../../test/unpack/builder';
import { ownedRoot, type OwnedRoot } from '../../test/devmapper/pool';

const { values } = parseArgs({ options: { n: { type: 'string', default: '8' }, files: { type: 'string', default: '2000' }, fs: { type: 'string', default: 'ext4' } } });
const N = Number(values.n);
const FILES = Number(values.files);

interface Summary {
  p50: number;
  max: number;
}

function summary(ms: number[]): Summary {
  const s = [...ms].sort((a, b) => a - b);
  return { p50: s[Math.floor((s.length - 1) / 2)]!, max: s[s.length - 1]! };
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

function layerBlob(): Buffer {
  const b = new TarBuilder();
  const payload = Buffer.alloc(4096, 'x');
  for (let d = 0; d < Math.ceil(FILES / 100); d++) b.dir(`d${d}`);
  for (let i = 0; i < FILES; i++) b.file(`d${Math.floor(i / 100)}/f${i}`, payload);
  return gzip(b.build());
}

async function benchDriver(driver: 'overlay' | 'devmapper', blob: string): Promise<Record<string, Summary>> {
  let own: OwnedRoot | undefined;
  if (driver === 'devmapper') own = ownedRoot({ data_size: '4G', base_size: '1G', fs: values.fs ?? 'ext4' }, 'bench');
  const d = await Daemon.start({ driver, root: own?.root, driverConfig: own?.config ?? {} });
  const c = d.client;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-bench-'));
  const out: Record<string, number[]> = { 'prepare-base': [], 'prepare-child': [], commit: [], remove: [], unpack: [] };
  let seq = 0;
  const key = (tag: string): string => `default/${++seq}/${tag}`;
  try {
    // A committed base layer every child starts from.
    const baseKey = key('base');
    await c.prepare(baseKey, '');
    await c.commit('base', baseKey);
    for (let i = 0; i < N; i++) {
      const k = key('pb');
      out['prepare-base']!.push(await time(() => c.prepare(k, '')));
      await c.remove(k);
      const ck = key('pc');
      let mounts = await (async () => {
        const t0 = performance.now();
        const m = await c.prepare(ck, 'base');
        out['prepare-child']!.push(performance.now() - t0);
        return m;
      })();
      const mnt = fs.mkdtempSync(path.join(work, 'm-'));
      await mountAll(mounts, mnt);
      fs.writeFileSync(path.join(mnt, 'f'), 'x');
      await unmountAll(mnt);
      out.commit!.push(await time(() => c.commit(`c${i}`, ck)));
      const rk = key('rm');
      mounts = await c.prepare(rk, `c${i}`);
      out.remove!.push(
        await time(async () => {
          await c.remove(rk);
          await c.cleanup();
        }),
      );
      const uk = key('unpack');
      out.unpack!.push(
        await time(async () => {
          const m = await c.prepare(uk, 'base');
          await mountAll(m, mnt);
          try {
            await applyLayer({ layer: blob, root: mnt, whiteouts: 'delete' });
          } finally {
            await unmountAll(mnt);
          }
          await c.commit(`u${i}`, uk);
        }),
      );
      fs.rmdirSync(mnt);
      await c.remove(`u${i}`);
      await c.remove(`c${i}`);
      await c.cleanup();
    }
  } finally {
    await d.stop().catch(() => undefined);
    await d.dispose().catch(() => undefined);
    fs.rmSync(work, { recursive: true, force: true });
    await own?.teardown();
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, summary(v)]));
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-bench-blob-'));
  const blob = path.join(dir, 'layer.tar.gz');
  fs.writeFileSync(blob, layerBlob());
  const inVm = process.env.DM_VM === '1';
  console.log(`devmapper vs overlay, n=${N}, unpack layer ${FILES} files (${(fs.statSync(blob).size / 1e6).toFixed(1)} MB gzip), fs=${values.fs}`);
  console.log(inVm ? 'measured INSIDE the dm VM (QEMU TCG software emulation: absolute times are 10-30x real hardware)' : 'measured on the host');
  const overlay = await benchDriver('overlay', blob);
  const dm = await benchDriver('devmapper', blob);
  console.log(`${'operation'.padEnd(14)} ${'overlay p50'.padStart(12)} ${'devmapper p50'.padStart(14)} ${'ratio'.padStart(7)} ${'overlay max'.padStart(12)} ${'devmapper max'.padStart(14)}`);
  for (const op of Object.keys(overlay)) {
    const o = overlay[op]!;
    const m = dm[op]!;
    console.log(
      `${op.padEnd(14)} ${(o.p50.toFixed(0) + ' ms').padStart(12)} ${(m.p50.toFixed(0) + ' ms').padStart(14)} ${((m.p50 / o.p50).toFixed(1) + 'x').padStart(7)} ${(o.max.toFixed(0) + ' ms').padStart(12)} ${(m.max.toFixed(0) + ' ms').padStart(14)}`,
    );
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
