/**
 * The Go peer client (bench/ops/goclient/main.go): containerd talks to strata with grpc-go, so the figures that
 * say what containerd waits for come from a grpc-go client, next to the Node client's. Built on demand with
 * Debian's Go toolchain and grpc-go sources (GOPATH mode: no module download is possible here).
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface, type Interface } from 'node:readline';

const SOURCE = path.resolve(__dirname, '..', '..', '..', 'bench', 'ops', 'goclient');
const GOPATH = '/usr/share/gocode';

/** Builds the client once per run; returns its path, or why it cannot be built. */
export function buildGoClient(): { bin: string } | { missing: string } {
  if (!fs.existsSync('/usr/bin/go')) return { missing: 'no Go toolchain (apt-get install golang-go)' };
  if (!fs.existsSync(path.join(GOPATH, 'src', 'google.golang.org', 'grpc'))) {
    return { missing: 'no grpc-go sources (apt-get install golang-google-grpc-dev)' };
  }
  const bin = path.join(os.tmpdir(), `strata-bench-goclient-${process.pid}`);
  execFileSync('go', ['build', '-o', bin, '.'], {
    cwd: SOURCE,
    env: { ...process.env, GOPATH, GO111MODULE: 'off', GOCACHE: path.join(os.tmpdir(), 'strata-bench-gocache') },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return { bin };
}

/** One running client: commands in, one JSON array of microseconds out per command. */
export class GoClient {
  private readonly lines: AsyncIterator<string>;

  private constructor(
    private readonly proc: ChildProcessWithoutNullStreams,
    private readonly rl: Interface,
  ) {
    this.lines = rl[Symbol.asyncIterator]();
  }

  static start(bin: string, socket: string, noopSocket?: string): GoClient {
    const args = ['-socket', socket, ...(noopSocket ? ['-noop', noopSocket] : [])];
    const proc = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    proc.stderr.on('data', (c: Buffer) => process.stderr.write(c));
    return new GoClient(proc, createInterface({ input: proc.stdout }));
  }

  /** Runs one command (see main.go) and returns its samples. */
  async run(...cmd: (string | number)[]): Promise<number[]> {
    this.proc.stdin.write(`${cmd.join(' ')}\n`);
    const next = await this.lines.next();
    if (next.done) throw new Error(`Go client exited during "${cmd.join(' ')}"`);
    const v: unknown = JSON.parse(next.value);
    if (Array.isArray(v)) return v as number[];
    throw new Error(`Go client, "${cmd.join(' ')}": ${(v as { error?: string }).error ?? next.value}`);
  }

  close(): void {
    this.rl.close();
    this.proc.stdin.end();
    this.proc.kill();
  }
}

/** The do-nothing grpc-go server, in its own process like strata: the floor of one call on this machine. */
export async function startNoopServer(bin: string, socket: string): Promise<{ stop(): void }> {
  const proc = spawn(bin, ['-serve-noop', socket], { stdio: ['ignore', 'ignore', 'inherit'] });
  const deadline = Date.now() + 10_000;
  while (!fs.existsSync(socket)) {
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error('the do-nothing Go server did not start');
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    stop: () => {
      proc.kill();
      fs.rmSync(socket, { force: true });
    },
  };
}
