/**
 * A real `strata serve` child process for tests: a temp root and socket, a chosen driver, readiness by a real
 * RPC, stop by SIGTERM (clean) or SIGKILL (crash), restart on the same root. Its stderr (JSON log lines) is kept
 * so a failing assertion can show what the daemon said.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SnapshotsApiClient, grpcCodeName } from '../../src/client/snapshots';

/** dist/test/helpers/daemon.js → dist/src/cli/strata.js */
export const STRATA_CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'strata.js');

export type DriverTable = Record<string, string | number | boolean>;

export interface DaemonOptions {
  driver: string;
  /** The daemon's --root; a fresh temp dir when absent (removed by dispose()). */
  root?: string;
  /** Settings for the `[driver.<name>]` table of the config file. */
  driverConfig?: DriverTable;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Extra `strata serve` flags. */
  extraArgs?: string[];
  readyTimeoutMs?: number;
  /** Per-RPC deadline of the client. */
  rpcTimeoutMs?: number;
}

const MAX_LOG = 256 * 1024;

/**
 * Daemons still running when the test process exits (a timed-out hook, an uncaught failure) would outlive it
 * and keep their mounts: kill them on the way out. 'exit' handlers must be synchronous, so SIGKILL.
 */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

function tomlString(s: string): string {
  return JSON.stringify(s); // a JSON string literal is a valid TOML basic string for the text we write
}

function tomlValue(v: string | number | boolean): string {
  return typeof v === 'string' ? tomlString(v) : String(v);
}

export class Daemon {
  /** Private temp dir holding the socket, config and (unless given) the root. Short: sun_path has 108 bytes. */
  readonly base: string;
  readonly root: string;
  readonly address: string;
  readonly configPath: string;
  private child: ChildProcess | undefined;
  private exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  private logBuf = '';
  private ownRoot: boolean;
  private _client: SnapshotsApiClient | undefined;
  /** Exit statuses of earlier runs, for assertions on clean shutdown. */
  readonly exits: Array<{ code: number | null; signal: NodeJS.Signals | null }> = [];

  private constructor(readonly opts: DaemonOptions) {
    this.base = fs.mkdtempSync(path.join(os.tmpdir(), 'st-'));
    this.ownRoot = !opts.root;
    this.root = opts.root ?? path.join(this.base, 'root');
    this.address = path.join(this.base, 's.sock');
    this.configPath = path.join(this.base, 'strata.toml');
    // The Docker volume plugin listens on a fixed host path by default; concurrent test daemons must not fight
    // over it, so the config turns it off.
    const lines = [`driver_name = ${tomlString(opts.driver)}`, '[volumes]', 'plugin_socket = ""'];
    if (opts.driverConfig && Object.keys(opts.driverConfig).length) {
      lines.push(`[driver.${opts.driver}]`);
      for (const [k, v] of Object.entries(opts.driverConfig)) lines.push(`${k} = ${tomlValue(v)}`);
    }
    fs.writeFileSync(this.configPath, lines.join('\n') + '\n');
  }

  /** Starts a daemon and waits until it answers RPCs. */
  static async start(opts: DaemonOptions): Promise<Daemon> {
    const d = new Daemon(opts);
    try {
      await d.startProcess();
    } catch (e) {
      await d.dispose().catch(() => undefined);
      throw e;
    }
    return d;
  }

  get client(): SnapshotsApiClient {
    if (!this._client) throw new Error('strata is not running');
    return this._client;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** Everything the daemon wrote to stdout/stderr across all runs (the last 256 KiB). */
  logs(): string {
    return this.logBuf;
  }

  /** The last lines of the log, for failure messages. */
  tail(lines = 40): string {
    return this.logBuf.trimEnd().split('\n').slice(-lines).join('\n');
  }

  private append(chunk: Buffer | string): void {
    this.logBuf += chunk.toString();
    if (this.logBuf.length > MAX_LOG) this.logBuf = this.logBuf.slice(-MAX_LOG);
  }

  private async startProcess(): Promise<void> {
    if (this.child) throw new Error('strata is already running');
    const args = [STRATA_CLI, 'serve', '--config', this.configPath, '--root', this.root, '--address', this.address, '--driver', this.opts.driver];
    args.push(...(this.opts.extraArgs ?? []));
    this.append(`--- start: node ${args.join(' ')}\n`);
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, STRATA_LOG_LEVEL: this.opts.logLevel ?? process.env.STRATA_LOG_LEVEL ?? 'info' },
    });
    this.child = child;
    live.add(child);
    child.stdout!.on('data', (c: Buffer) => this.append(c));
    child.stderr!.on('data', (c: Buffer) => this.append(c));
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        live.delete(child);
        this.append(`--- exit: code=${code} signal=${signal}\n`);
        this.exits.push({ code, signal });
        if (this.child === child) this.child = undefined;
        resolve({ code, signal });
      });
      child.on('error', (err) => {
        this.append(`--- spawn error: ${err.message}\n`);
        if (this.child === child) this.child = undefined;
        resolve({ code: -1, signal: null });
      });
    });
    await this.waitServing(child);
  }

  /**
   * Polls with a fresh client per attempt: a client that failed to connect backs off for seconds, and a stale
   * socket left by a killed run refuses connections until the new daemon replaces it.
   */
  private async waitServing(child: ChildProcess): Promise<void> {
    // STRATA_TEST_READY_MS: the dm VM lane (software emulation, 10-30x slower, the host's cores shared) gives a
    // devmapper daemon's start (pool checks, thin_ls scan, resumes) longer than 30 s to come up.
    const deadline = Date.now() + (this.opts.readyTimeoutMs ?? Number(process.env.STRATA_TEST_READY_MS ?? 30_000));
    let last = '';
    while (Date.now() < deadline) {
      if (this.child !== child) throw new Error(`strata exited before serving:\n${this.tail()}`);
      if (fs.existsSync(this.address)) {
        const probe = new SnapshotsApiClient(this.address, 2000);
        try {
          await probe.waitReady(500);
          await probe.list();
          probe.close();
          this._client = new SnapshotsApiClient(this.address, this.opts.rpcTimeoutMs ?? 120_000);
          return;
        } catch (e) {
          last = `${grpcCodeName(e) ?? ''} ${(e as Error).message}`;
          probe.close();
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const pid = child.pid;
    child.kill('SIGKILL');
    await this.exited;
    throw new Error(`strata (pid ${pid}) did not serve on ${this.address} within the timeout (${last}):\n${this.tail()}`);
  }

  private closeClient(): void {
    this._client?.close();
    this._client = undefined;
  }

  /**
   * SIGTERM and wait for a clean exit; SIGKILL after timeoutMs. The default outlasts the daemon's own 30 s
   * drain limit, so a stuck call shows as the daemon's failure to drain, not as this helper's impatience.
   */
  async stop(timeoutMs = 45_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const child = this.child;
    this.closeClient();
    if (!child) return this.exits[this.exits.length - 1] ?? { code: null, signal: null };
    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
    const res = await Promise.race([this.exited!, timedOut]);
    clearTimeout(timer);
    if (res === 'timeout') {
      child.kill('SIGKILL');
      await this.exited;
      throw new Error(`strata did not exit within ${timeoutMs} ms of SIGTERM:\n${this.tail()}`);
    }
    return res;
  }

  /** kill -9: a crash at whatever point the daemon is. */
  async kill(): Promise<void> {
    const child = this.child;
    this.closeClient();
    if (!child) return;
    child.kill('SIGKILL');
    await this.exited;
  }

  /** Waits until the process has exited (after an external kill); false on timeout. */
  async waitExit(timeoutMs = 10_000): Promise<boolean> {
    if (!this.child) return true;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
    const res = await Promise.race([this.exited!.then(() => true as const), timedOut]);
    clearTimeout(timer);
    return res;
  }

  /** Starts again on the same root and socket (after stop() or kill()). */
  async restart(): Promise<void> {
    if (this.child) await this.stop();
    await this.startProcess();
  }

  /** Stops the daemon if needed and removes its temp dir (and its root when the daemon made it). */
  async dispose(): Promise<void> {
    try {
      if (this.child) await this.stop().catch(() => this.kill());
    } finally {
      this.closeClient();
      if (this.ownRoot) await removeTreeUnmounting(this.base);
      else {
        for (const f of [this.address, this.configPath]) fs.rmSync(f, { force: true });
        fs.rmSync(this.base, { recursive: true, force: true });
      }
    }
  }
}

/** Mountpoints at or below dir, deepest first. */
export function mountsBelow(dir: string): string[] {
  const out: string[] = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    const mp = f[4].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (mp === dir || mp.startsWith(dir + '/')) out.push(mp);
  }
  return out.sort((a, b) => b.length - a.length);
}

/**
 * Removes a test directory, first lazily unmounting anything a crashed daemon or test left mounted below it,
 * so rm never descends into a mounted filesystem it does not own.
 */
export async function removeTreeUnmounting(dir: string): Promise<void> {
  const { execFile } = await import('node:child_process');
  for (const mp of mountsBelow(dir)) {
    await new Promise<void>((resolve) => execFile('umount', ['-l', mp], () => resolve()));
  }
  // Files made read-only by a driver (btrfs read-only subvolumes are the drivers' business) may resist; tolerate.
  await fs.promises.rm(dir, { recursive: true, force: true }).catch(() => undefined);
}
