/**
 * A private containerd (1.6 from apt, or 2.x from ../shared/tools/containerd2.sh) for end-to-end tests: its own
 * config, root, state, temp dir and socket under one test directory, a `strata` proxy snapshotter pointing at a
 * strata socket, CRI and NRI off so nothing touches the host's /run/containerd or /var/run/nri. `ctr` always gets
 * `--address`, so the host's containerd (if any) is never involved.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export type Flavor = '1.6' | '2.x';

export interface Binaries {
  flavor: Flavor;
  containerd: string;
  ctr: string;
  /** Dir put first in containerd's PATH so it finds the matching containerd-shim-runc-v2. */
  binDir: string;
  /** `containerd --version` output. */
  version: string;
}

/** Where containerd 2.x is cached between runs (containerd2.sh is quick when it is already there). */
export const CONTAINERD2_CACHE = process.env.STRATA_CONTAINERD2_DIR ?? '/var/cache/strata-test/containerd2';

function sharedTool(name: string): string | undefined {
  // dist/test/helpers/containerd.js → <repo>/../shared/tools; also from the source tree.
  for (const up of ['../../../..', '../../..']) {
    const p = path.resolve(__dirname, up, 'shared', 'tools', name);
    if (fs.existsSync(p)) return p;
  }
  return undefined;
}

function versionOf(bin: string): string {
  return execFileSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 }).trim();
}

/**
 * Finds containerd of a flavor, fetching 2.x into the cache when needed. Returns a reason string instead when it
 * cannot be had, for the test to skip with.
 */
export function findContainerd(flavor: Flavor): Binaries | string {
  try {
    if (flavor === '1.6') {
      const containerd = '/usr/bin/containerd';
      if (!fs.existsSync(containerd)) return 'containerd 1.6 is not installed (apt-get install containerd runc)';
      const version = versionOf(containerd);
      if (!/ (v)?1\.[67]\./.test(version)) return `/usr/bin/containerd is not 1.6/1.7: ${version}`;
      return { flavor, containerd, ctr: '/usr/bin/ctr', binDir: '/usr/bin', version };
    }
    let containerd = path.join(CONTAINERD2_CACHE, 'usr/bin/containerd');
    if (!fs.existsSync(containerd)) {
      const tool = sharedTool('containerd2.sh');
      if (!tool) return 'containerd 2.x: ../shared/tools/containerd2.sh not found';
      containerd = execFileSync('bash', [tool, CONTAINERD2_CACHE], { encoding: 'utf8', timeout: 300_000, stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n').pop() ?? containerd;
    }
    const binDir = path.dirname(containerd);
    const version = versionOf(containerd);
    if (!/ v?2\./.test(version)) return `${containerd} is not 2.x: ${version}`;
    return { flavor, containerd, ctr: path.join(binDir, 'ctr'), binDir, version };
  } catch (e) {
    return `containerd ${flavor} unavailable: ${(e as Error).message}`;
  }
}

export interface CtrResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface StartOptions {
  bins: Binaries;
  /** The test's own directory; everything containerd writes goes under it. */
  dir: string;
  /** strata's socket, for `[proxy_plugins.strata]`. */
  strataAddress: string;
  /** containerd's log level (default info; STRATA_E2E_CONTAINERD_LOG overrides). */
  logLevel?: string;
}

function configToml(o: StartOptions, d: Dirs): string {
  const q = (s: string): string => JSON.stringify(s); // TOML basic strings accept JSON's escapes for paths
  const level = o.logLevel ?? process.env.STRATA_E2E_CONTAINERD_LOG ?? 'info';
  const common = [
    `root = ${q(d.root)}`,
    `state = ${q(d.state)}`,
    `temp = ${q(d.temp)}`,
  ];
  if (o.bins.flavor === '1.6') {
    return [
      'version = 2',
      ...common,
      // CRI would listen for kubelet and write to /etc/cni; the other snapshotters only log noise here.
      'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]',
      '[grpc]',
      `  address = ${q(d.socket)}`,
      '[ttrpc]',
      `  address = ${q(`${d.socket}.ttrpc`)}`,
      '[debug]',
      `  level = ${q(level)}`,
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = ${q(d.opt)}`,
      '[proxy_plugins.strata]',
      '  type = "snapshot"',
      `  address = ${q(o.strataAddress)}`,
      '',
    ].join('\n');
  }
  return [
    'version = 3',
    ...common,
    // NRI would listen on /var/run/nri/nri.sock, shared by every containerd on the machine.
    'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime", "io.containerd.nri.v1.nri", "io.containerd.podsandbox.controller.v1.podsandbox", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs", "io.containerd.differ.v1.erofs"]',
    '[grpc]',
    `  address = ${q(d.socket)}`,
    '[ttrpc]',
    `  address = ${q(`${d.socket}.ttrpc`)}`,
    '[debug]',
    `  level = ${q(level)}`,
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${q(d.opt)}`,
    // The transfer service (2.x's default import path) unpacks only for the snapshotters listed here.
    ...['strata', 'overlayfs', 'native'].flatMap((sn) => [
      '[[plugins."io.containerd.transfer.v1.local".unpack_config]]',
      '  platform = "linux/amd64"',
      `  snapshotter = ${q(sn)}`,
    ]),
    '[proxy_plugins.strata]',
    '  type = "snapshot"',
    `  address = ${q(o.strataAddress)}`,
    '',
  ].join('\n');
}

interface Dirs {
  base: string;
  root: string;
  state: string;
  temp: string;
  opt: string;
  socket: string;
  config: string;
  log: string;
}

function dirsOf(base: string): Dirs {
  return {
    base,
    root: path.join(base, 'root'),
    state: path.join(base, 'state'),
    temp: path.join(base, 'tmp'),
    opt: path.join(base, 'opt'),
    // Short: unix socket paths are limited to 108 bytes.
    socket: path.join(base, 'c.sock'),
    config: path.join(base, 'config.toml'),
    log: path.join(base, 'containerd.log'),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class Containerd {
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  readonly dirs: Dirs;

  private constructor(readonly opts: StartOptions) {
    this.dirs = dirsOf(path.join(opts.dir, 'containerd'));
  }

  get address(): string {
    return this.dirs.socket;
  }

  get flavor(): Flavor {
    return this.opts.bins.flavor;
  }

  static async start(opts: StartOptions): Promise<Containerd> {
    const c = new Containerd(opts);
    for (const d of [c.dirs.root, c.dirs.state, c.dirs.temp, c.dirs.opt]) fs.mkdirSync(d, { recursive: true, mode: 0o711 });
    fs.writeFileSync(c.dirs.config, configToml(opts, c.dirs));
    await c.startProcess();
    return c;
  }

  private async startProcess(): Promise<void> {
    const log = fs.openSync(this.dirs.log, 'a');
    fs.writeSync(log, `\n===== start ${new Date().toISOString()} =====\n`);
    const proc = spawn(this.opts.bins.containerd, ['--config', this.dirs.config], {
      stdio: ['ignore', log, log],
      env: { ...process.env, PATH: `${this.opts.bins.binDir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` },
    });
    fs.closeSync(log);
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`containerd exited at start (${proc.exitCode ?? proc.signalCode}):\n${this.logTail()}`);
      const r = await this.ctr(['version'], { timeoutMs: 5000 });
      if (r.code === 0) return;
      if (Date.now() > deadline) throw new Error(`containerd did not answer within 30s: ${r.stderr}\n${this.logTail()}`);
      await sleep(200);
    }
  }

  /** Runs ctr against this containerd; never throws for a non-zero exit (see ctrOk). */
  ctr(args: readonly string[], o: { namespace?: string; timeoutMs?: number } = {}): Promise<CtrResult> {
    const full = ['--address', this.dirs.socket, ...(o.namespace ? ['--namespace', o.namespace] : []), ...args];
    return new Promise((resolve) => {
      execFile(this.opts.bins.ctr, full, { timeout: o.timeoutMs ?? 120_000, maxBuffer: 64 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        resolve({ stdout, stderr: err && !stderr ? err.message : stderr, code });
      });
    });
  }

  /** Runs ctr and throws with its output and containerd's log tail when it fails. */
  async ctrOk(args: readonly string[], o: { namespace?: string; timeoutMs?: number } = {}): Promise<string> {
    const r = await this.ctr(args, o);
    if (r.code !== 0) {
      throw new Error(`ctr ${args.join(' ')} failed (${r.code}):\n${r.stderr}${r.stdout}\n--- containerd log ---\n${this.logTail()}`);
    }
    return r.stdout;
  }

  logTail(lines = 60): string {
    try {
      // Plugin loading is hundreds of info lines that say nothing about a failure.
      return fs
        .readFileSync(this.dirs.log, 'utf8')
        .split('\n')
        .filter((l) => !/level=info msg="?(loading plugin|skip loading plugin)/.test(l))
        .slice(-lines)
        .join('\n');
    } catch {
      return '(no containerd log)';
    }
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** SIGTERM, then SIGKILL after `graceMs`. Running shims stay up, as they do in production. */
  async stop(graceMs = 15_000): Promise<void> {
    const proc = this.proc;
    if (!proc || !this.running) return;
    proc.kill('SIGTERM');
    const done = await Promise.race([this.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!done) {
      proc.kill('SIGKILL');
      await this.exited;
    }
    this.proc = undefined;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.startProcess();
  }

  /** For after(): stops containerd, kills this instance's shims (found by its socket in their arguments), unmounts
   *  everything under the test directory. Never throws, so the other cleanups still run. */
  async destroy(): Promise<void> {
    try {
      await this.stop(10_000);
    } catch {
      /* keep going */
    }
    for (const pid of shimsOf(this.dirs.socket)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    unmountUnder(this.dirs.base);
  }
}

/** PIDs of processes whose arguments mention `socket` (this containerd's shims). */
function shimsOf(socket: string): number[] {
  const out: number[] = [];
  for (const ent of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(ent) || Number(ent) === process.pid) continue;
    try {
      const argv = fs.readFileSync(`/proc/${ent}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.includes('containerd-shim') && argv.some((a) => a.includes(socket))) out.push(Number(ent));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/** Mount points at or under `dir`, deepest first, from /proc/self/mountinfo (octal escapes decoded). */
export function mountsUnder(dir: string): string[] {
  const abs = path.resolve(dir);
  const points: string[] = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    const mp = f[4].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (mp === abs || mp.startsWith(`${abs}/`)) points.push(mp);
  }
  return points.sort((a, b) => b.length - a.length);
}

/** Lazily unmounts everything at or under `dir`; for cleanup after a failure. */
export function unmountUnder(dir: string): void {
  for (let round = 0; round < 5; round++) {
    const points = mountsUnder(dir);
    if (points.length === 0) return;
    for (const mp of points) {
      try {
        execFileSync('umount', ['-l', mp], { stdio: 'ignore' });
      } catch {
        /* stacked mounts come back next round */
      }
    }
  }
}
