/**
 * A private dockerd for end-to-end tests: its own data root, exec root, pidfile and socket, no iptables and no
 * bridge, so it touches nothing of a system dockerd. Images come from `docker import` of a busybox tarball built
 * here (no registry is reachable). Volume plugins are still discovered in /run/docker/plugins, the one fixed path.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface DockerResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Why dockerd cannot run here, or undefined. */
export function dockerdMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  for (const p of ['/usr/sbin/dockerd', '/usr/bin/containerd', '/usr/sbin/runc', '/usr/bin/busybox']) {
    if (!fs.existsSync(p)) return `${p} is not installed`;
  }
  if (!dockerCli()) return 'the docker CLI is not installed';
  return undefined;
}

function dockerCli(): string | undefined {
  return ['/usr/bin/docker', '/usr/local/bin/docker'].find((p) => fs.existsSync(p));
}

function mountsBelow(dir: string): string[] {
  const out: string[] = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = (line.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (mp === dir || mp.startsWith(dir + '/')) out.push(mp);
  }
  return out.sort((a, b) => b.length - a.length);
}

export class Dockerd {
  readonly base: string;
  readonly socket: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private log = '';

  private constructor() {
    // Short: the exec root holds containerd's sockets, and sun_path has 108 bytes.
    this.base = fs.mkdtempSync(path.join(os.tmpdir(), 'dk-'));
    this.socket = path.join(this.base, 'docker.sock');
  }

  static async start(): Promise<Dockerd> {
    const d = new Dockerd();
    try {
      await d.spawn();
    } catch (e) {
      await d.stop().catch(() => undefined);
      throw e;
    }
    return d;
  }

  private async spawn(): Promise<void> {
    const args = [
      '--data-root', path.join(this.base, 'data'),
      '--exec-root', path.join(this.base, 'x'),
      '--pidfile', path.join(this.base, 'docker.pid'),
      '-H', `unix://${this.socket}`,
      '--iptables=false', '--ip6tables=false', '--ip-masq=false', '--bridge=none',
      '--log-level=warn',
    ];
    const child = spawn('/usr/sbin/dockerd', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const keep = (c: Buffer): void => {
      this.log = (this.log + c.toString()).slice(-128 * 1024);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`dockerd exited at startup:\n${this.log}`);
      const r = await this.docker(['version', '--format', '{{.Server.Version}}'], 10_000).catch(() => undefined);
      if (r && r.code === 0) return;
      if (Date.now() > deadline) throw new Error(`dockerd did not answer within 60 s:\n${this.log}`);
      await new Promise((r2) => setTimeout(r2, 300));
    }
  }

  logs(): string {
    return this.log;
  }

  /** Runs the docker CLI against this daemon; never rejects on a non-zero exit (tests assert on it). */
  docker(args: readonly string[], timeoutMs = 120_000): Promise<DockerResult> {
    const cli = dockerCli();
    if (!cli) return Promise.reject(new Error('no docker CLI'));
    return new Promise((resolve, reject) => {
      execFile(
        cli,
        ['-H', `unix://${this.socket}`, ...args],
        { timeout: timeoutMs, maxBuffer: 16 << 20, env: { ...process.env, DOCKER_CONFIG: path.join(this.base, 'cli') } },
        (err, stdout, stderr) => {
          if (err && typeof err.code !== 'number') return reject(err);
          resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
        },
      );
    });
  }

  /** `docker` that must succeed. */
  async ok(args: readonly string[], timeoutMs?: number): Promise<string> {
    const r = await this.docker(args, timeoutMs);
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /**
   * Imports a minimal image: busybox-static and its applets as symlinks, built as a tar by busybox itself.
   */
  async importBusybox(tag: string): Promise<void> {
    const dir = fs.mkdtempSync(path.join(this.base, 'img-'));
    const rootfs = path.join(dir, 'rootfs');
    fs.mkdirSync(path.join(rootfs, 'bin'), { recursive: true });
    for (const d of ['tmp', 'data', 'proc', 'sys', 'dev', 'etc']) fs.mkdirSync(path.join(rootfs, d));
    fs.copyFileSync('/usr/bin/busybox', path.join(rootfs, 'bin', 'busybox'));
    fs.chmodSync(path.join(rootfs, 'bin', 'busybox'), 0o755);
    for (const applet of ['sh', 'cat', 'dd', 'echo', 'ls', 'sleep', 'sync', 'df', 'rm', 'test', 'touch', 'head', 'wc']) {
      fs.symlinkSync('busybox', path.join(rootfs, 'bin', applet));
    }
    const tar = path.join(dir, 'rootfs.tar');
    await new Promise<void>((resolve, reject) =>
      execFile('tar', ['-C', rootfs, '-cf', tar, '.'], (err) => (err ? reject(err) : resolve())),
    );
    await this.ok(['import', '-c', 'ENV PATH=/bin', tar, tag]);
    fs.rmSync(dir, { recursive: true, force: true });
  }

  /** Removes every container, stops dockerd (SIGTERM, then SIGKILL), lifts its mounts and deletes its dirs. */
  async stop(): Promise<void> {
    if (this.child && this.child.exitCode === null) {
      const ids = (await this.docker(['ps', '-aq'], 20_000).catch(() => undefined))?.stdout.split('\n').filter(Boolean) ?? [];
      if (ids.length) await this.docker(['rm', '-f', ...ids], 60_000).catch(() => undefined);
      this.child.kill('SIGTERM');
      const killed = await Promise.race([this.exited!.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 20_000))]);
      if (!killed) {
        this.child.kill('SIGKILL');
        await this.exited;
      }
    }
    this.child = undefined;
    for (const m of mountsBelow(this.base)) {
      await new Promise<void>((resolve) => execFile('umount', ['-l', m], () => resolve()));
    }
    fs.rmSync(this.base, { recursive: true, force: true, maxRetries: 3 });
  }
}
