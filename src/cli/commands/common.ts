/**
 * What snapctl's commands share: argument parsing that reports usage errors, the clients for the socket, label
 * parsing, and the one mapping from failures to exit codes and messages. Commands from other areas may use it.
 *
 * Exit codes (documented in `snapctl --help`; scripts branch on them):
 *   0 ok · 1 other failure · 2 usage · 3 daemon not reachable · 4 not found · 5 already exists
 *   6 failed precondition · 7 invalid argument · 8 unimplemented · 9 resource exhausted · 10 deadline exceeded
 */
import * as net from 'node:net';
import { parseArgs, type ParseArgsConfig } from 'node:util';
// gRPC and the clients are loaded when a command talks to the daemon: `snapctl apply` never does, and loading
// them cost it ~80 ms per run (a third of its startup).
import type * as grpc from '@grpc/grpc-js';
import type { AdminApiClient } from '../../client/admin';
import { DEFAULT_ADDRESS } from '../../client/address';
import type { SnapshotsApiClient } from '../../client/snapshots';
import { isStrataError, type ErrorCode } from '../../core/errors';
import type { Labels } from '../../core/types';
import type { CliIO } from '../command';

export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  unreachable: 3,
  notFound: 4,
  alreadyExists: 5,
  failedPrecondition: 6,
  invalidArgument: 7,
  unimplemented: 8,
  resourceExhausted: 9,
  deadlineExceeded: 10,
} as const;

export const EXIT_HELP = `Exit codes:
  0 ok                        1 other failure           2 usage error
  3 daemon not reachable      4 not found               5 already exists
  6 failed precondition       7 invalid argument        8 unimplemented
  9 resource exhausted       10 deadline exceeded
`;

/** A bad command line: snapctl prints the message and the command's usage, exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** node:util parseArgs with its errors turned into UsageErrors and positional counts checked. */
export function parse<O extends Options>(argv: string[], options: O, positionals: { min: number; max: number }) {
  let r;
  try {
    r = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (r.positionals.length < positionals.min) throw new UsageError('missing arguments');
  if (r.positionals.length > positionals.max) throw new UsageError(`unexpected argument "${r.positionals[positionals.max]}"`);
  return r;
}

/** The socket: snapctl puts a global --address into STRATA_ADDRESS of the env it hands to commands. */
export function addressOf(io: CliIO): string {
  return io.env.STRATA_ADDRESS || DEFAULT_ADDRESS;
}

/** Runs fn with a Snapshots client (and Admin client) on the socket, closing them afterwards. */
export async function withClients<T>(io: CliIO, fn: (c: { snapshots: SnapshotsApiClient; admin: AdminApiClient }) => Promise<T>): Promise<T> {
  const address = addressOf(io);
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { SnapshotsApiClient: Snapshots } = require('../../client/snapshots') as typeof import('../../client/snapshots');
  const { AdminApiClient: Admin } = require('../../client/admin') as typeof import('../../client/admin');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const snapshots = new Snapshots(address);
  const admin = new Admin(address);
  try {
    return await fn({ snapshots, admin });
  } finally {
    snapshots.close();
    admin.close();
  }
}

/** `k=v` words into labels; `k=` keeps an empty value (label removes it). */
export function parseLabels(words: readonly string[]): Labels {
  const out: Labels = {};
  for (const w of words) {
    const eq = w.indexOf('=');
    if (eq <= 0) throw new UsageError(`label "${w}" is not of the form key=value`);
    out[w.slice(0, eq)] = w.slice(eq + 1);
  }
  return out;
}

function grpcStatus(): typeof grpc.status {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('@grpc/grpc-js') as typeof grpc).status;
}

function exitByGrpc(code: grpc.status): number {
  const s = grpcStatus();
  const map: Partial<Record<grpc.status, number>> = {
    [s.NOT_FOUND]: EXIT.notFound,
    [s.ALREADY_EXISTS]: EXIT.alreadyExists,
    [s.FAILED_PRECONDITION]: EXIT.failedPrecondition,
    [s.INVALID_ARGUMENT]: EXIT.invalidArgument,
    [s.UNIMPLEMENTED]: EXIT.unimplemented,
    [s.RESOURCE_EXHAUSTED]: EXIT.resourceExhausted,
    [s.DEADLINE_EXCEEDED]: EXIT.deadlineExceeded,
    [s.UNAVAILABLE]: EXIT.unreachable,
  };
  return map[code] ?? EXIT.failure;
}

const EXIT_BY_STRATA: Partial<Record<ErrorCode, number>> = {
  NotFound: EXIT.notFound,
  AlreadyExists: EXIT.alreadyExists,
  FailedPrecondition: EXIT.failedPrecondition,
  InvalidArgument: EXIT.invalidArgument,
  Unimplemented: EXIT.unimplemented,
  ResourceExhausted: EXIT.resourceExhausted,
  Unavailable: EXIT.unreachable,
};

function isServiceError(e: unknown): e is grpc.ServiceError {
  return typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'number' && 'details' in e;
}

/** Why the socket does not answer, as errno: ENOENT (no daemon), ECONNREFUSED (stale socket), EACCES. */
function probeSocket(address: string): Promise<string | undefined> {
  const path = address.replace(/^unix:(\/\/)?/, '');
  return new Promise((resolve) => {
    const s = net.connect(path);
    const done = (why: string | undefined): void => {
      s.destroy();
      resolve(why);
    };
    s.once('connect', () => done(undefined));
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
    s.setTimeout(1000, () => done('ETIMEDOUT'));
  });
}

/** Prints the failure the way a person can act on it and returns the exit code. */
export async function reportError(e: unknown, io: CliIO, usage?: string): Promise<number> {
  if (e instanceof UsageError) {
    io.stderr.write(`snapctl: ${e.message}\n`);
    if (usage) io.stderr.write(`usage: ${usage}\n`);
    return EXIT.usage;
  }
  if (isServiceError(e)) {
    const status = grpcStatus();
    if (e.code === status.UNAVAILABLE) {
      const address = addressOf(io);
      const why = await probeSocket(address);
      if (why !== undefined) {
        io.stderr.write(`snapctl: strata is not running at ${address} (connect ${why}); start it with \`strata serve\`\n`);
        return EXIT.unreachable;
      }
    }
    io.stderr.write(`snapctl: ${e.details || e.message} (${status[e.code] ?? e.code})\n`);
    return exitByGrpc(e.code as grpc.status);
  }
  if (isStrataError(e)) {
    io.stderr.write(`snapctl: ${e.message}\n`);
    return EXIT_BY_STRATA[e.code] ?? EXIT.failure;
  }
  // An unexpected failure is a bug somewhere: STRATA_DEBUG=1 shows where.
  io.stderr.write(`snapctl: ${e instanceof Error ? (io.env.STRATA_DEBUG && e.stack) || e.message : String(e)}\n`);
  return EXIT.failure;
}
