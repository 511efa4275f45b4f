/** The one place strata's error codes become gRPC status codes. */
import * as grpc from '@grpc/grpc-js';
import { StrataError, isStrataError, toStrataError, type ErrorCode } from '../core/errors';
import type { Level, Logger } from '../core/log';

const CODES: Record<ErrorCode, grpc.status> = {
  NotFound: grpc.status.NOT_FOUND,
  AlreadyExists: grpc.status.ALREADY_EXISTS,
  FailedPrecondition: grpc.status.FAILED_PRECONDITION,
  InvalidArgument: grpc.status.INVALID_ARGUMENT,
  Unimplemented: grpc.status.UNIMPLEMENTED,
  ResourceExhausted: grpc.status.RESOURCE_EXHAUSTED,
  Unavailable: grpc.status.UNAVAILABLE,
  Internal: grpc.status.INTERNAL,
};

export function grpcStatusOf(code: ErrorCode): grpc.status {
  return CODES[code];
}

/** A gRPC error object for any failure; unknown failures become INTERNAL with their message. */
export function toGrpcError(e: unknown, context: string): Partial<grpc.StatusObject> & { code: grpc.status; details: string } {
  const err: StrataError = e instanceof StrataError ? e : toStrataError(e, context);
  return { code: CODES[err.code], details: err.message };
}

/**
 * Wraps an async unary handler: the promise's value answers the call, a thrown error becomes its status.
 * onError sees every failure (for logging internal ones).
 */
export function unary<Req, Res>(
  name: string,
  fn: (req: Req) => Promise<Res> | Res,
  onError: (name: string, e: unknown) => void,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let result: Promise<Res>;
    try {
      result = Promise.resolve(fn(call.request));
    } catch (e) {
      result = Promise.reject(e);
    }
    result.then(
      (res) => callback(null, res),
      (e: unknown) => {
        onError(name, e);
        callback(toGrpcError(e, name));
      },
    );
  };
}

/**
 * The onError of a service: expected refusals (NotFound, AlreadyExists...) are answers, not faults, and are
 * logged at `refusedLevel`; anything Internal or unknown is logged as an error.
 */
export function callErrorLogger(log: Logger, refusedLevel: Exclude<Level, 'error'> = 'debug'): (method: string, e: unknown) => void {
  return (method, e) => {
    if (isStrataError(e) && e.code !== 'Internal') log[refusedLevel]('call refused', { method, code: e.code, err: e.message });
    else log.error('call failed', { method, err: e as Error });
  };
}
