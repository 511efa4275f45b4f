/**
 * Runs `zfs` with an argument array (never a shell) and turns its complaints into StrataErrors with the codes
 * callers act on. zfs reports everything as exit status 1 plus a sentence on stderr, so the sentence is matched.
 */
import { execFile } from 'node:child_process';
import { StrataError, type ErrorCode } from '../../src/core/errors';

export class ZfsError extends StrataError {
  constructor(
    code: ErrorCode,
    message: string,
    /** zfs's own words, for matching by callers that expect a particular failure. */
    readonly stderr: string,
  ) {
    super(code, message);
  }
}

/** [pattern on stderr, error code, what to tell the operator] in order of precedence. */
const RULES: Array<[RegExp, ErrorCode, string]> = [
  [/failed to initialize ZFS library|Please make sure that the zfs-fuse daemon is running|connect: /i, 'Unavailable', 'the ZFS daemon is not running (start zfs-fuse, or load the zfs module)'],
  [/dataset does not exist|no such pool|could not find any snapshots/i, 'NotFound', 'no such dataset'],
  [/dataset already exists/i, 'FailedPrecondition', 'the dataset already exists'],
  [/has dependent clones|has children/i, 'FailedPrecondition', 'the dataset still has dependents'],
  [/out of space|quota exceeded|disk quota/i, 'ResourceExhausted', 'the pool or dataset is out of space'],
  [/is busy|device busy|umount failed|unmount failed/i, 'Unavailable', 'the dataset is busy (in use or mounted)'],
  [/permission denied|operation not permitted/i, 'FailedPrecondition', 'permission denied (strata must run as root)'],
  [/pool I\/O is currently suspended/i, 'Unavailable', 'the pool is suspended (I/O errors)'],
  [/invalid property|bad property|invalid option|unsupported/i, 'InvalidArgument', 'zfs rejected the request'],
];

export function classify(stderr: string): { code: ErrorCode; why: string } {
  for (const [re, code, why] of RULES) if (re.test(stderr)) return { code, why };
  return { code: 'Internal', why: 'zfs failed' };
}

export function runZfs(args: readonly string[], timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('zfs', args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const text = (stderr || err.message).trim();
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return reject(new ZfsError('FailedPrecondition', 'the zfs program is not installed (zfsutils-linux or zfs-fuse)', text));
      }
      const { code, why } = classify(text);
      // The first line is zfs's own sentence; the usage text it sometimes appends is noise.
      const first = text.split('\n')[0] ?? '';
      reject(new ZfsError(code, `${why}: zfs ${args.join(' ')}: ${first}`, text));
    });
  });
}

export function isZfsError(e: unknown, re: RegExp): e is ZfsError {
  return e instanceof ZfsError && re.test(e.stderr);
}
