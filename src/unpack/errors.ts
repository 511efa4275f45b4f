/**
 * Why an apply failed. Every failure fails the whole layer (the caller discards the snapshot); the kind lets
 * the daemon map it to a gRPC code and tests assert the class of refusal without matching messages.
 */
import { StrataError, type ErrorCode } from '../core/errors';

export type UnpackErrorKind =
  /** The archive tries to reach outside the root or to plant something the form forbids. */
  | 'unsafe'
  /** A format or entry type strata does not apply (sparse files, unknown types, devices without privilege). */
  | 'unsupported'
  /** A bound was hit: metadata size, path length, depth, entry count, decompression ratio. */
  | 'limit'
  /** The stream ended early. */
  | 'truncated'
  /** Bad checksums, malformed numbers or records, a decompressor error. */
  | 'corrupt'
  /** The uncompressed stream's digest is not the expected diffID. */
  | 'digest'
  /** The filesystem refused (ENOSPC, EIO...). */
  | 'io';

export class UnpackError extends Error {
  override readonly name = 'UnpackError';
  constructor(
    readonly kind: UnpackErrorKind,
    message: string,
    readonly errno?: string,
  ) {
    super(message);
  }
}

const CODE_BY_KIND: Record<UnpackErrorKind, ErrorCode> = {
  unsafe: 'InvalidArgument',
  unsupported: 'InvalidArgument',
  limit: 'ResourceExhausted',
  truncated: 'InvalidArgument',
  corrupt: 'InvalidArgument',
  digest: 'FailedPrecondition',
  io: 'Internal',
};

/**
 * The core's typed error for an unpack failure, so the gRPC layer maps it in its one place. `what` starts the
 * message: the daemon's Unpack and Diff and `snapctl apply` each name themselves.
 */
export function toStrata(e: unknown, what: 'unpack' | 'apply' | 'diff' = 'unpack'): StrataError {
  if (e instanceof StrataError) return e;
  if (e instanceof UnpackError) {
    const code = e.errno === 'ENOSPC' || e.errno === 'EDQUOT' ? 'ResourceExhausted' : CODE_BY_KIND[e.kind];
    return new StrataError(code, `${what}: ${e.message}`, { cause: e });
  }
  return new StrataError('Internal', `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}
