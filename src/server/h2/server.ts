/**
 * strata's gRPC server: gRPC over HTTP/2 on a unix socket, written for the latency of small unary calls.
 *
 * Why not grpc-js's server: containerd calls Stat, Mounts, Prepare and Commit for every layer of every container,
 * and through grpc-js (on node:http2, a Duplex stream and a dozen objects per call) one call cost ~300 µs p50 on
 * the project's 2-core VM with a grpc-go client, against ~90 µs for a plain frame loop and ~170 µs for grpc-go's
 * own server (bench/ops measures all three). The surface strata serves is small — unary calls and one
 * server-streaming call (List), no compression, no request streaming, insecure unix sockets — so the server is
 * small too. Clients (snapctl, tests) keep using grpc-js, which is also the check that this server speaks gRPC.
 *
 * Services register through the generated grpc-js ServiceDefinitions and handler shapes
 * (`handleUnaryCall(call, callback)`, `handleServerStreamingCall(call)` with write/end/emit('error')), so the
 * service modules in src/server/ do not know which server runs them.
 */
import type * as grpc from '@grpc/grpc-js';
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { Connection, type Headers, type ResponseStream, type StreamHandler } from './connection';
import { encodeHeaders } from './hpack';
import { encodeGrpcMessage, lengthPrefixed, parseTimeoutMs, splitMessages } from './status';

/** gRPC status codes this file sends itself. */
const enum Code {
  OK = 0,
  UNKNOWN = 2,
  DEADLINE_EXCEEDED = 4,
  RESOURCE_EXHAUSTED = 8,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
}

export interface StatusLike {
  code?: number;
  details?: string;
  message?: string;
}

interface Method {
  path: string;
  responseStream: boolean;
  deserialize(b: Buffer): unknown;
  serialize(v: unknown): Buffer;
  handler: (...args: never[]) => void;
}

export interface ServerOptions {
  maxReceiveMessageLength: number;
  maxSendMessageLength: number;
}

const RESPONSE_HEADERS: ReadonlyArray<readonly [string, string]> = [
  [':status', '200'],
  ['content-type', 'application/grpc'],
];
/** The same for every call: encoded once (the encoder keeps no state). */
const RESPONSE_HEADER_BLOCK = encodeHeaders(RESPONSE_HEADERS);

/**
 * The call a handler sees, shaped like grpc-js's ServerUnaryCall / ServerWritableStream: `request`,
 * `cancelled` and a 'cancelled' event; for streams write(), end() and emit('error', status).
 */
class ServerCall extends EventEmitter {
  request: unknown;
  cancelled = false;
  private done = false;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly stream: ResponseStream,
    private readonly method: Method,
    private readonly opts: ServerOptions,
    timeoutMs: number | undefined,
  ) {
    super();
    if (timeoutMs !== undefined) {
      this.timer = setTimeout(() => {
        this.markCancelled();
        this.finish(Code.DEADLINE_EXCEEDED, 'Deadline exceeded');
      }, timeoutMs);
    }
    // Server-streaming handlers report failure by emitting 'error' with a status (grpc-js's convention).
    this.on('error', (st: StatusLike) => this.finish(st.code ?? Code.UNKNOWN, st.details ?? st.message ?? 'unknown error'));
  }

  /** Runs the handler on the decoded request. */
  run(request: unknown): void {
    this.request = request;
    try {
      if (this.method.responseStream) (this.method.handler as (c: ServerCall) => void)(this);
      else (this.method.handler as (c: ServerCall, cb: grpc.sendUnaryData<unknown>) => void)(this, (err, value) => this.answer(err, value));
    } catch (e) {
      this.finish(Code.UNKNOWN, (e as Error).message);
    }
  }

  /** The peer reset the stream or went away. */
  cancel(): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    this.markCancelled();
  }

  private markCancelled(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.emit('cancelled');
  }

  private answer(err: StatusLike | null | undefined, value: unknown): void {
    if (err) return this.finish(err.code ?? Code.UNKNOWN, err.details ?? err.message ?? 'unknown error');
    if (this.write(value)) this.finish(Code.OK, '');
  }

  /** Sends one response message; false (and the call ended with a status) when it cannot be encoded or sent. */
  write(value: unknown): boolean {
    if (this.done) return false;
    let bytes: Buffer;
    try {
      bytes = this.method.serialize(value);
    } catch (e) {
      this.finish(Code.INTERNAL, `cannot encode the response: ${(e as Error).message}`);
      return false;
    }
    if (bytes.length > this.opts.maxSendMessageLength) {
      this.finish(Code.RESOURCE_EXHAUSTED, `response larger than the limit of ${this.opts.maxSendMessageLength} bytes`);
      return false;
    }
    this.stream.sendHeaders(RESPONSE_HEADER_BLOCK);
    this.stream.sendData(lengthPrefixed(bytes));
    return true;
  }

  /** Server streaming: no more messages. */
  end(): void {
    this.finish(Code.OK, '');
  }

  finish(code: number, message: string): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    const trailers: Array<readonly [string, string]> = this.stream.headersSent ? [] : [...RESPONSE_HEADERS];
    trailers.push(['grpc-status', String(code)]);
    if (message) trailers.push(['grpc-message', encodeGrpcMessage(message)]);
    this.stream.finish(trailers);
  }
}

/** Collects a request body; at its end, decodes the one request message and runs the call. */
class RequestBody implements StreamHandler {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private over = false;

  constructor(
    private readonly call: ServerCall,
    private readonly method: Method,
    private readonly maxReceive: number,
  ) {}

  data(chunk: Buffer): void {
    if (this.over) return;
    this.bytes += chunk.length;
    if (this.bytes > this.maxReceive + 5) {
      this.over = true;
      this.chunks = [];
      this.call.finish(Code.RESOURCE_EXHAUSTED, `request larger than the limit of ${this.maxReceive} bytes`);
      return;
    }
    this.chunks.push(chunk);
  }

  end(): void {
    if (this.over) return;
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = [];
    const split = splitMessages(body);
    if ('error' in split) return this.call.finish(Code.INTERNAL, split.error);
    if (split.messages.length !== 1) return this.call.finish(Code.UNIMPLEMENTED, `expected exactly one request message, got ${split.messages.length}`);
    let request: unknown;
    try {
      request = this.method.deserialize(split.messages[0]!);
    } catch (e) {
      return this.call.finish(Code.INTERNAL, `cannot parse the request: ${(e as Error).message}`);
    }
    this.call.run(request);
  }

  cancel(): void {
    this.call.cancel();
  }
}

/** Answers a stream that never reaches a handler: trailers-only with a status, or a plain HTTP status. */
function refuse(stream: ResponseStream, headers: ReadonlyArray<readonly [string, string]>): StreamHandler {
  stream.finish(headers);
  return { data: () => undefined, end: () => undefined, cancel: () => undefined };
}

export class GrpcServer {
  private readonly methods = new Map<string, Method>();
  private readonly connections = new Set<Connection>();
  private listener?: net.Server;

  constructor(private readonly opts: ServerOptions) {}

  /** Registers a service from its generated grpc-js definition and an implementation keyed like it. */
  addService(def: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation): void {
    for (const [name, m] of Object.entries(def)) {
      if (m.requestStream) throw new Error(`${m.path}: request streaming is not supported by strata's server`);
      const handler = impl[name];
      if (typeof handler !== 'function') throw new Error(`${m.path}: no implementation`);
      this.methods.set(m.path, {
        path: m.path,
        responseStream: m.responseStream,
        deserialize: m.requestDeserialize as (b: Buffer) => unknown,
        serialize: m.responseSerialize as (v: unknown) => Buffer,
        handler: handler as Method['handler'],
      });
    }
  }

  private route = (stream: ResponseStream, headers: Headers): StreamHandler => {
    if (headers.get(':method') !== 'POST') return refuse(stream, [[':status', '405']]);
    const ct = headers.get('content-type') ?? '';
    if (!ct.startsWith('application/grpc')) return refuse(stream, [[':status', '415']]);
    const path = headers.get(':path') ?? '';
    const grpcStatus = (code: Code, msg: string): StreamHandler =>
      refuse(stream, [...RESPONSE_HEADERS, ['grpc-status', String(code)], ['grpc-message', encodeGrpcMessage(msg)]]);
    const method = this.methods.get(path);
    if (!method) return grpcStatus(Code.UNIMPLEMENTED, `The server does not implement the method ${path}`);
    const enc = headers.get('grpc-encoding');
    if (enc !== undefined && enc !== 'identity') return grpcStatus(Code.UNIMPLEMENTED, `grpc-encoding ${enc} is not supported`);
    const call = new ServerCall(stream, method, this.opts, parseTimeoutMs(headers.get('grpc-timeout')));
    return new RequestBody(call, method, this.opts.maxReceiveMessageLength);
  };

  listen(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = net.createServer((socket) => {
        const conn = new Connection(socket, this.route);
        this.connections.add(conn);
        conn.onIdle = () => this.connections.delete(conn);
      });
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        this.listener = server;
        resolve();
      });
    });
  }

  /** Stops accepting, tells every client to go away, and calls back when the calls in flight have finished. */
  tryShutdown(cb: () => void): void {
    this.listener?.close();
    const pending = [...this.connections];
    if (pending.length === 0) return cb();
    let left = pending.length;
    for (const c of pending) {
      const prev = c.onIdle;
      c.onIdle = () => {
        prev?.();
        if (--left === 0) cb();
      };
      c.goAway();
    }
  }

  /** Cuts every connection; unfinished calls see `cancelled`. */
  forceShutdown(): void {
    this.listener?.close();
    for (const c of [...this.connections]) c.destroy();
  }
}

