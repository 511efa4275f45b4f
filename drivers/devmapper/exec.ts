/**
 * Runs the device-mapper and filesystem tools with argument arrays (never a shell) and turns their complaints
 * into StrataErrors. dmsetup reports kernel errors as "device-mapper: <ioctl> ioctl on <name> failed: <strerror>",
 * so the strerror text is what callers match on (EEXIST for a taken thin id, ENODATA for a missing one, EBUSY for
 * a device still open).
 *
 * Every dmsetup call runs with DM_DISABLE_UDEV=1: libdevmapper then creates and removes the /dev/mapper nodes
 * itself and never waits for a udev confirmation that would not come on hosts (and in the test VM) without udev.
 * Where udev runs it only warns and the nodes are still right.
 */
import { execFile } from 'node:child_process';
import { StrataError, type ErrorCode } from '../../src/core/errors';

export class DmError extends StrataError {
  constructor(
    code: ErrorCode,
    message: string,
    /** The tool's own words, for callers that expect a particular failure. */
    readonly stderr: string,
  ) {
    super(code, message);
  }
}

/** [pattern on stderr, error code] in order of precedence. */
const RULES: Array<[RegExp, ErrorCode]> = [
  [/No such device or address|No such device$|does not exist|not found/im, 'NotFound'],
  [/No data available/i, 'NotFound'],
  [/File exists|already exists/i, 'AlreadyExists'],
  [/Device or resource busy/i, 'Unavailable'],
  [/No space left on device|out of (data|metadata) space/i, 'ResourceExhausted'],
  [/Failure to communicate with kernel device-mapper|open failed: No such device/i, 'FailedPrecondition'],
  [/Permission denied|Operation not permitted/i, 'FailedPrecondition'],
  [/Invalid argument/i, 'InvalidArgument'],
];

function classify(stderr: string): ErrorCode {
  for (const [re, code] of RULES) if (re.test(stderr)) return code;
  return 'Internal';
}

/** The noise libdevmapper prints when DM_DISABLE_UDEV meets a running udev; it is not an error. */
const UDEV_NOTE = /^Udev is running and DM_DISABLE_UDEV.*$\n?/gm;

export function run(program: string, args: readonly string[], timeoutMs = 300_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      program,
      args,
      { timeout: timeoutMs, maxBuffer: 64 << 20, env: { ...process.env, DM_DISABLE_UDEV: '1', LC_ALL: 'C' } },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const text = (stderr || err.message).replace(UDEV_NOTE, '').trim();
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          return reject(new DmError('FailedPrecondition', `${program} is not installed`, text));
        }
        const first = text.split('\n').filter(Boolean).slice(-2).join(' / ');
        reject(new DmError(classify(text), `${program} ${args.join(' ')}: ${first}`, text));
      },
    );
  });
}

export const dmsetup = (args: readonly string[]): Promise<string> => run('dmsetup', args);

export function isDmError(e: unknown, re: RegExp): e is DmError {
  return e instanceof DmError && re.test(e.stderr);
}
