/** Runs the storage tools (btrfs, zfs, mount, cp) with argument arrays; failures carry the tool's stderr. */
import { execFile } from 'node:child_process';

export class ToolError extends Error {
  override readonly name = 'ToolError';
  constructor(
    message: string,
    readonly stderr: string,
    readonly exitCode: number | null,
  ) {
    super(message);
  }
}

export function run(file: string, args: readonly string[], timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const code = typeof err.code === 'number' ? err.code : null;
        reject(new ToolError(`${file} ${args.join(' ')}: ${stderr.trim() || err.message}`, stderr, code));
      } else resolve(stdout);
    });
  });
}
