/**
 * The unpack benchmark: a realistic three-layer image made locally from this machine's files (a base of
 * man pages, headers, Python and Perl libraries, zoneinfo; an app layer of /usr/sbin; an app layer of this
 * project's node_modules), gzip and zstd variants. In one run, side by side, medians of several cold runs
 * (fresh target directory each time, every layer synced before the clock stops):
 *   strata `snapctl apply` (one process per layer, like tar), strata's daemon path (Layers.Unpack on the
 *   overlay driver), GNU tar -xzf / --zstd -xf (+ sync -f), containerd 1.6 `ctr image import` (overlayfs
 *   snapshotter; its content ingest measured separately with --no-unpack).
 * Prints times, MB/s, entries/s, peak RSS and the ratios. Run: `node dist/bench/unpack/bench.js`
 * (STRATA_BENCH_RUNS, STRATA_BENCH_DIR, STRATA_BENCH_SKIP=containerd,daemon to trim).
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LayersApiClient } from '../../src/client/layers';
import { Containerd, findContainerd } from '../../test/helpers/containerd';
import { Daemon } from '../../test/helpers/daemon';

const RUNS = Number(process.env.STRATA_BENCH_RUNS ?? 3);
const WORK = process.env.STRATA_BENCH_DIR ?? '/var/tmp/strata-bench-unpack';
const SKIP = new Set((process.env.STRATA_BENCH_SKIP ?? '').split(',').filter(Boolean));
const SNAPCTL = path.resolve(__dirname, '..', '..', 'src', 'cli', 'snapctl.js');

const LAYER_SOURCES: string[][] = [
  ['usr/share/man', 'usr/share/zoneinfo', 'usr/share/i18n', 'usr/share/perl', 'usr/share/perl5', 'usr/include', 'usr/lib/python3', 'usr/lib/python3.11'],
  ['usr/sbin'],
  [path.relative('/', path.resolve(__dirname, '..', '..', '..', 'node_modules'))],
];

type Comp = 'gzip' | 'zstd';
const EXT: Record<Comp, string> = { gzip: '.gz', zstd: '.zst' };

interface Layer {
  tar: string;
  bytes: number;
  entries: number;
}

function sh(file: string, args: string[]): string {
  return execFileSync(file, args, { encoding: 'utf8', maxBuffer: 256 << 20 });
}

function buildLayers(): Layer[] {
  const dir = path.join(WORK, 'layers');
  fs.mkdirSync(dir, { recursive: true });
  return LAYER_SOURCES.map((srcs, i) => {
    const tar = path.join(dir, `l${i}.tar`);
    const existing = srcs.filter((s) => fs.existsSync(path.join('/', s)));
    if (!fs.existsSync(`${tar}.zst`)) {
      process.stderr.write(`building layer ${i} from ${existing.join(' ')}\n`);
      sh('tar', ['--xattrs', '-cf', tar, '-C', '/', ...existing]);
      sh('gzip', ['-k', '-6', '-f', tar]);
      sh('zstd', ['-q', '-3', '-f', '-k', tar]);
    }
    const entries = sh('tar', ['-tf', tar]).split('\n').filter(Boolean).length;
    return { tar, bytes: fs.statSync(tar).size, entries };
  });
}

/** Runs a command under GNU time; resolves wall ms and peak RSS (KiB). */
function timed(file: string, args: string[]): Promise<{ ms: number; rssKb: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn('/usr/bin/time', ['-f', '%M', file, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    p.on('exit', (code) => {
      const ms = performance.now() - t0;
      if (code !== 0) return reject(new Error(`${file} ${args.join(' ')} failed (${code}): ${err}`));
      const lines = err.trim().split('\n');
      resolve({ ms, rssKb: Number(lines[lines.length - 1]) });
    });
  });
}

function freshDir(name: string): string {
  const d = path.join(WORK, 'targets', name);
  fs.rmSync(d, { recursive: true, force: true });
  fs.mkdirSync(d, { recursive: true, mode: 0o755 });
  return d;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

interface Row {
  tool: string;
  comp: Comp;
  ms: number[];
  rssKb: number;
}

function writeOciArchive(layers: Layer[], comp: Comp, out: string): void {
  const dir = path.join(WORK, `oci-${comp}`);
  fs.rmSync(dir, { recursive: true, force: true });
  const blobs = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const put = (file: string): { digest: string; size: number } => {
    const hex = sh('sha256sum', [file]).split(' ')[0]!;
    fs.copyFileSync(file, path.join(blobs, hex));
    return { digest: `sha256:${hex}`, size: fs.statSync(file).size };
  };
  const putBuf = (b: Buffer): { digest: string; size: number } => {
    const f = path.join(dir, 'tmp');
    fs.writeFileSync(f, b);
    const r = put(f);
    fs.rmSync(f);
    return r;
  };
  const diffIds = layers.map((l) => `sha256:${sh('sha256sum', [l.tar]).split(' ')[0]}`);
  const config = putBuf(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: diffIds } })));
  const mt = comp === 'gzip' ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar+zstd';
  const manifest = putBuf(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: layers.map((l) => ({ mediaType: mt, ...put(l.tar + EXT[comp]) })),
      }),
    ),
  );
  fs.writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  fs.writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'io.containerd.image.name': `docker.io/strata/bench:${comp}` } }] }),
  );
  sh('tar', ['-cf', out, '-C', dir, '.']);
  fs.rmSync(dir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  fs.mkdirSync(WORK, { recursive: true });
  const layers = buildLayers();
  const totalBytes = layers.reduce((a, l) => a + l.bytes, 0);
  const totalEntries = layers.reduce((a, l) => a + l.entries, 0);
  process.stdout.write(`layers: ${layers.length}, ${(totalBytes / 1e6).toFixed(0)} MB uncompressed, ${totalEntries} entries; target fs: ${sh('stat', ['-f', '-c', '%T', WORK]).trim()}; ${RUNS} runs each\n`);

  const rows: Row[] = [];
  let daemon: Daemon | undefined;
  let client: LayersApiClient | undefined;
  let ctrd: Containerd | undefined;
  try {
    if (!SKIP.has('daemon')) {
      const root = path.join(WORK, 'strata-root');
      fs.rmSync(root, { recursive: true, force: true });
      daemon = await Daemon.start({ driver: 'overlay', root, logLevel: 'warn' });
      client = new LayersApiClient(daemon.address);
    }
    const bins = findContainerd('1.6');
    if (!SKIP.has('containerd') && typeof bins !== 'string') {
      const cdir = path.join(WORK, 'containerd');
      fs.rmSync(cdir, { recursive: true, force: true });
      fs.mkdirSync(cdir, { recursive: true });
      ctrd = await Containerd.start({ bins, dir: cdir, strataAddress: path.join(cdir, 'none.sock') });
    }

    for (const comp of ['gzip', 'zstd'] as Comp[]) {
      const archive = path.join(WORK, `image-${comp}.tar`);
      if (ctrd) writeOciArchive(layers, comp, archive);
      const r = { strata: [] as number[], tar: [] as number[], daemon: [] as number[], ctr: [] as number[], ingest: [] as number[] };
      const rss = { strata: 0, tar: 0 };
      for (let run = 0; run < RUNS; run++) {
        // strata apply: one process per layer, each layer synced (syncfs) before it returns.
        let d = freshDir('strata');
        let t = 0;
        for (const l of layers) {
          const x = await timed(process.execPath, [SNAPCTL, 'apply', l.tar + EXT[comp], d]);
          t += x.ms;
          rss.strata = Math.max(rss.strata, x.rssKb);
        }
        r.strata.push(t);
        fs.rmSync(d, { recursive: true, force: true });

        // GNU tar, then sync -f so both sides pay for durability.
        d = freshDir('tar');
        t = 0;
        for (const l of layers) {
          const x = await timed('tar', [comp === 'gzip' ? '-xzf' : '--zstd', ...(comp === 'zstd' ? ['-xf'] : []), l.tar + EXT[comp], '-C', d]);
          const t1 = performance.now();
          sh('sync', ['-f', d]);
          t += x.ms + (performance.now() - t1);
          rss.tar = Math.max(rss.tar, x.rssKb);
        }
        r.tar.push(t);
        fs.rmSync(d, { recursive: true, force: true });

        if (client) {
          let parent = '';
          const names: string[] = [];
          const t0 = performance.now();
          for (const [i, l] of layers.entries()) {
            const name = `bench-${comp}-${run}-${i}`;
            await client.unpack({ name, parent, layerPath: l.tar + EXT[comp] });
            names.push(name);
            parent = name;
          }
          r.daemon.push(performance.now() - t0);
          for (const n of names.reverse()) await daemon!.client.remove(n);
        }

        if (ctrd) {
          const ns = `bench-${comp}-${run}`;
          const t0 = performance.now();
          await ctrd.ctrOk(['image', 'import', '--snapshotter', 'overlayfs', archive], { namespace: ns, timeoutMs: 900_000 });
          r.ctr.push(performance.now() - t0);
          const t1 = performance.now();
          await ctrd.ctrOk(['image', 'import', '--no-unpack', archive], { namespace: `${ns}-ingest`, timeoutMs: 900_000 });
          r.ingest.push(performance.now() - t1);
          await ctrd.ctr(['image', 'rm', '--sync', `docker.io/strata/bench:${comp}`], { namespace: ns, timeoutMs: 300_000 });
          await ctrd.ctr(['image', 'rm', '--sync', `docker.io/strata/bench:${comp}`], { namespace: `${ns}-ingest` });
        }
        process.stderr.write(`${comp} run ${run + 1}/${RUNS} done\n`);
      }
      rows.push({ tool: 'strata snapctl apply', comp, ms: r.strata, rssKb: rss.strata });
      if (r.daemon.length) rows.push({ tool: 'strata daemon Unpack (overlay)', comp, ms: r.daemon, rssKb: daemonRss(daemon) });
      rows.push({ tool: comp === 'gzip' ? 'GNU tar -xzf' : 'GNU tar --zstd -xf', comp, ms: r.tar, rssKb: rss.tar });
      if (r.ctr.length) {
        rows.push({ tool: 'containerd 1.6 ctr import (overlayfs)', comp, ms: r.ctr, rssKb: 0 });
        rows.push({ tool: '  of which content ingest (--no-unpack)', comp, ms: r.ingest, rssKb: 0 });
      }
    }
  } finally {
    client?.close();
    await daemon?.dispose();
    await ctrd?.destroy();
    fs.rmSync(path.join(WORK, 'targets'), { recursive: true, force: true });
  }

  const out: string[] = [];
  out.push(`${'tool'.padEnd(40)} ${'comp'.padEnd(5)} ${'median s'.padStart(9)} ${'MB/s'.padStart(7)} ${'entries/s'.padStart(10)} ${'peak RSS'.padStart(9)}  runs (s)`);
  for (const row of rows) {
    const m = median(row.ms);
    out.push(
      `${row.tool.padEnd(40)} ${row.comp.padEnd(5)} ${(m / 1000).toFixed(2).padStart(9)} ${(totalBytes / 1e6 / (m / 1000)).toFixed(0).padStart(7)} ${(totalEntries / (m / 1000)).toFixed(0).padStart(10)} ${(row.rssKb ? `${(row.rssKb / 1024).toFixed(0)} MB` : '-').padStart(9)}  ${row.ms.map((x) => (x / 1000).toFixed(2)).join(' ')}`,
    );
  }
  out.push('');
  for (const comp of ['gzip', 'zstd'] as Comp[]) {
    const get = (prefix: string): number | undefined => {
      const row = rows.find((x) => x.comp === comp && x.tool.startsWith(prefix));
      return row ? median(row.ms) : undefined;
    };
    const strata = get('strata snapctl')!;
    const dmn = get('strata daemon');
    const tar = get('GNU tar')!;
    const ctr = get('containerd');
    const target = comp === 'gzip' ? 0.75 : 0.95;
    out.push(`${comp}: strata/tar ${(strata / tar).toFixed(2)} (target ≤ ${target})` + (dmn ? `, daemon/tar ${(dmn / tar).toFixed(2)}` : '') + (ctr ? `, strata/containerd ${(strata / ctr).toFixed(2)}` + (dmn ? `, daemon/containerd ${(dmn / ctr).toFixed(2)}` : '') + ' (target ≤ 0.6)' : ''));
  }
  process.stdout.write(out.join('\n') + '\n');
}

function daemonRss(d: Daemon | undefined): number {
  if (!d?.pid) return 0;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${d.pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
