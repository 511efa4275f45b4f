/** Runs `btrfs` with an argument array (never a shell) and returns stdout; failures carry stderr. */
import { execFile } from 'node:child_process';

export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    message: string,
    readonly stderr: string,
    readonly exitCode: number | null,
  ) {
    super(message);
  }
}

export function runBtrfs(args: readonly string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('btrfs', args, { timeout: timeoutMs, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const code = typeof err.code === 'number' ? err.code : null;
      const why = (stderr || err.message).trim();
      reject(new CommandError(`btrfs ${args.join(' ')}: ${why}`, stderr, code));
    });
  });
}
