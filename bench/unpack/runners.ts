/**
 * One cold run of each contender: snapctl apply and GNU tar into a fresh directory (one process per layer, peak
 * RSS from GNU time), the daemon's Layers.Unpack on one driver, `snapctl import` of the OCI archive. A daemon
 * serves one driver and one compression, so its VmHWM is that series' own peak.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AdminApiClient } from '../../src/client/admin';
import { LayersApiClient } from '../../src/client/layers';
import { Daemon, removeTreeUnmounting } from '../../test/helpers/daemon';
import type { DaemonSpec, DriverName } from './fs';
import { chainIds, EXT, type Comp, type Layer } from './layers';

/** dist/bench/unpack → dist/src/cli/snapctl.js */
const SNAPCTL = path.resolve(__dirname, '..', '..', 'src', 'cli', 'snapctl.js');

export interface Sample {
  ms: number;
  rssKb: number;
}

/**
 * The environment timed commands run in: the bench's own, without NODE_EXTRA_CA_CERTS. This VM's shell exports it
 * (for its package proxy), and Node then parses the ~140 certificates of the named bundle at every start, before
 * any script runs: `node -e 0` took 88–118 ms of CPU with it, 26–37 ms without (perf stat, 5 runs each). A node
 * that runs containers has no reason to set it, nothing timed here makes a TLS connection, and tar never reads
 * it; left in, it would charge every `snapctl apply` process ~60 ms that only this machine's setup costs.
 */
const TIMED_ENV: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_EXTRA_CA_CERTS'));

/** Runs a command under GNU time; resolves wall ms and peak RSS (KiB). */
export function timed(file: string, args: string[]): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn('/usr/bin/time', ['-f', '%M', file, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: TIMED_ENV });
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

const BTRFS_MAGIC = 0x9123683e;

/**
 * Waits until the filesystem holding dir has finished the work an earlier row left behind, so no contender pays
 * for the one before it: the deletions of its tree are committed (`sync -f`; otherwise the next row's first
 * syncfs commits them), and on btrfs the subvolumes a driver deleted are cleaned up. Their cleanup otherwise runs
 * through the next row; `btrfs filesystem sync` commits and wakes the kernel's cleaner (a plain syncfs does not,
 * and `btrfs subvolume sync` alone waits for the 30 s periodic commit).
 */
export function settle(dir: string): void {
  if (fs.statfsSync(dir).type !== BTRFS_MAGIC) {
    execFileSync('sync', ['-f', dir]);
    return;
  }
  const deadline = Date.now() + 300_000;
  for (;;) {
    execFileSync('btrfs', ['filesystem', 'sync', dir], { stdio: 'ignore' });
    if (execFileSync('btrfs', ['subvolume', 'list', '-d', dir], { encoding: 'utf8' }).trim() === '') return;
    if (Date.now() > deadline) throw new Error(`deleted btrfs subvolumes under ${dir} were not cleaned up in 300 s`);
    execFileSync('sleep', ['0.1']);
  }
}

function freshDir(parent: string, name: string): string {
  const d = path.join(parent, name);
  fs.rmSync(d, { recursive: true, force: true });
  fs.mkdirSync(d, { recursive: true, mode: 0o755 });
  return d;
}

/** How an applied layer is made durable: one syncfs(2) of the target's filesystem, an fsync per file, or nothing. */
export type SyncMode = 'syncfs' | 'fsync' | 'none';

/** snapctl apply, one process per layer; each layer is synced (syncfs by default) before the process returns. */
export async function applyRun(layers: readonly Layer[], comp: Comp, parent: string, sync: SyncMode = 'syncfs'): Promise<Sample> {
  const d = freshDir(parent, 'strata');
  const s: Sample = { ms: 0, rssKb: 0 };
  for (const l of layers) {
    const x = await timed(process.execPath, [SNAPCTL, 'apply', '--sync', sync, l.tar + EXT[comp], d]);
    s.ms += x.ms;
    s.rssKb = Math.max(s.rssKb, x.rssKb);
  }
  fs.rmSync(d, { recursive: true, force: true });
  settle(parent);
  return s;
}

/** GNU tar, then sync -f so both sides pay for durability. */
export async function tarRun(layers: readonly Layer[], comp: Comp, parent: string): Promise<Sample> {
  const d = freshDir(parent, 'tar');
  const s: Sample = { ms: 0, rssKb: 0 };
  for (const l of layers) {
    const x = await timed('tar', [...(comp === 'gzip' ? ['-xzf'] : ['--zstd', '-xf']), l.tar + EXT[comp], '-C', d]);
    const t1 = performance.now();
    execFileSync('sync', ['-f', d]);
    s.ms += x.ms + (performance.now() - t1);
    s.rssKb = Math.max(s.rssKb, x.rssKb);
  }
  fs.rmSync(d, { recursive: true, force: true });
  settle(parent);
  return s;
}

/** Peak RSS (VmHWM, KiB) of a live process; 0 once it is gone. */
export function vmHwm(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** One daemon run's times: wall at the client, and what the Unpack replies say the daemon spent. */
export interface UnpackRun {
  wallMs: number;
  /** Sum of Unpack durations (Prepare + apply + Commit inside the daemon). */
  serverMs: number;
  /** Sum of the syncfs time within them. */
  syncMs: number;
}

/** A fresh `strata serve` for one driver (and one compression's runs). */
export class DaemonSeries {
  readonly runs: UnpackRun[] = [];
  /** Unpacks of an empty layer on each layer's parent, less their syncfs, summed: the snapshot cost per image. */
  snapshotOpsMs: number | undefined;

  private constructor(
    readonly spec: DaemonSpec,
    private readonly daemon: Daemon,
    private readonly layersApi: LayersApiClient,
    private readonly admin: AdminApiClient,
  ) {}

  static async start(spec: DaemonSpec): Promise<DaemonSeries> {
    fs.mkdirSync(path.dirname(spec.root), { recursive: true });
    const daemon = await Daemon.start({ driver: spec.driver, root: spec.root, driverConfig: spec.config, logLevel: 'warn' });
    return new DaemonSeries(spec, daemon, new LayersApiClient(daemon.address), new AdminApiClient(daemon.address));
  }

  get driver(): DriverName {
    return this.spec.driver;
  }

  get address(): string {
    return this.daemon.address;
  }

  /** Peak RSS of the daemon so far (KiB). */
  hwm(): number {
    return vmHwm(this.daemon.pid);
  }

  /** Unpacks the layers as a chain, then removes it; `probe` also times snapshot operations on the same parents. */
  async unpackRun(layers: readonly Layer[], comp: Comp, run: number, probe: boolean): Promise<UnpackRun> {
    const names: string[] = [];
    const r: UnpackRun = { wallMs: 0, serverMs: 0, syncMs: 0 };
    const t0 = performance.now();
    for (const [i, l] of layers.entries()) {
      const name = `bench-${run}-${i}`;
      const x = await this.layersApi.unpack({ name, parent: names[i - 1] ?? '', layerPath: l.tar + EXT[comp] });
      r.serverMs += x.durationMs;
      r.syncMs += x.syncMs;
      names.push(name);
    }
    r.wallMs = performance.now() - t0;
    this.runs.push(r);
    if (probe) this.snapshotOpsMs = await this.probeSnapshotOps(names, run);
    await this.removeAll(names);
    return r;
  }

  /**
   * What an Unpack spends on snapshots alone: an Unpack of an empty layer (an end-of-archive block) on each
   * layer's parent, less its syncfs. It goes through the same Prepare-for-apply and Commit as a real layer, which
   * a client's Prepare does not (on native, a client's Prepare makes a whole, writable tree).
   */
  private async probeSnapshotOps(names: readonly string[], run: number): Promise<number> {
    const empty = path.join(path.dirname(this.spec.root), 'empty-layer.tar');
    fs.writeFileSync(empty, Buffer.alloc(1024));
    let ms = 0;
    const probes: string[] = [];
    for (let i = 0; i < names.length; i++) {
      const name = `probe-${run}-${i}`;
      const x = await this.layersApi.unpack({ name, parent: names[i - 1] ?? '', layerPath: empty });
      ms += x.durationMs - x.syncMs;
      probes.push(name);
    }
    for (const n of probes) await this.daemon.client.remove(n);
    await this.waitReclaimed();
    return ms;
  }

  /** Removes a chain (children first) and waits for the background reclaim, so runs do not overlap. */
  async removeAll(names: readonly string[]): Promise<void> {
    for (const n of [...names].reverse()) await this.daemon.client.remove(n);
    await this.waitReclaimed();
    settle(this.spec.root);
  }

  private async waitReclaimed(timeoutMs = 600_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((await this.admin.status()).pendingReclaims > 0) {
      if (Date.now() > deadline) throw new Error(`${this.driver}: background reclaim did not finish in ${timeoutMs / 1000} s`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  async dispose(): Promise<void> {
    this.layersApi.close();
    this.admin.close();
    await this.daemon.dispose();
    if (!this.spec.keepRoot) await removeTreeUnmounting(this.spec.root);
  }
}

/** `snapctl import` of the whole OCI archive through a fresh daemon: one client process for every layer. */
export async function importRun(d: DaemonSeries, layers: readonly Layer[], archive: string): Promise<Sample> {
  const s = await timed(process.execPath, [SNAPCTL, '--address', d.address, 'import', archive]);
  await d.removeAll(chainIds(layers));
  return s;
}
