/**
 * strata's typed errors. Every failure a caller can act on is one of these codes; the gRPC layer maps them to
 * status codes in exactly one place (src/server/status.ts), the Docker plugin to `Err` strings, snapctl to exit
 * codes. containerd maps errors by gRPC code only, so the code is the contract and the message is for people.
 */
export type ErrorCode =
  | 'NotFound'
  | 'AlreadyExists'
  | 'FailedPrecondition'
  | 'InvalidArgument'
  | 'Unimplemented'
  | 'ResourceExhausted'
  | 'Unavailable'
  | 'Internal';

export class StrataError extends Error {
  override readonly name = 'StrataError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const notFound = (msg: string): StrataError => new StrataError('NotFound', msg);
export const alreadyExists = (msg: string): StrataError => new StrataError('AlreadyExists', msg);
export const failedPrecondition = (msg: string): StrataError => new StrataError('FailedPrecondition', msg);
export const invalidArgument = (msg: string): StrataError => new StrataError('InvalidArgument', msg);
export const unimplemented = (msg: string): StrataError => new StrataError('Unimplemented', msg);
export const resourceExhausted = (msg: string): StrataError => new StrataError('ResourceExhausted', msg);
export const internal = (msg: string, cause?: unknown): StrataError => new StrataError('Internal', msg, { cause });

export function isStrataError(e: unknown, code?: ErrorCode): e is StrataError {
  return e instanceof StrataError && (code === undefined || e.code === code);
}

/** errno of a Node system error (`ENOENT`, `ENOSPC`...), or undefined. */
export function errnoCode(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const { code, errno } = e as { code?: unknown; errno?: unknown };
  // Node 20's libuv has no name for EDQUOT (122) and reports it as 'UNKNOWN'; a quota hit must not look like a bug.
  if (errno === -122 || errno === 122) return 'EDQUOT';
  return typeof code === 'string' ? code : undefined;
}

/**
 * Turns an unknown failure (a system error from a driver, a child process failure) into a StrataError. A full
 * disk or quota is ResourceExhausted so callers can tell it from a bug.
 */
export function toStrataError(e: unknown, context: string): StrataError {
  if (e instanceof StrataError) return e;
  const code = errnoCode(e);
  const detail = e instanceof Error ? e.message : String(e);
  if (code === 'ENOSPC' || code === 'EDQUOT') return new StrataError('ResourceExhausted', `${context}: ${detail}`, { cause: e });
  return new StrataError('Internal', `${context}: ${detail}`, { cause: e });
}
