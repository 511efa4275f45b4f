/**
 * One HTTP/2 connection of the gRPC server: the frame loop, stream states, flow control in both directions and
 * the response side of each stream. What runs on a stream is the Router's business (server.ts).
 *
 * Outbound frames are queued and written with one socket write per turn of the event loop, so a unary answer
 * (HEADERS, DATA, trailers, window credit) costs one write(2).
 */
import type { Socket } from 'node:net';
import {
  ConnectionError,
  DEFAULT_MAX_FRAME,
  DEFAULT_WINDOW,
  EMPTY,
  Flag,
  FrameReader,
  FrameType,
  H2Error,
  MAX_WINDOW,
  PREFACE,
  Setting,
  frame,
  settingsPayload,
  u32,
  unpad,
  writeHeader,
  type Frame,
} from './frames';
import { HpackDecoder, HpackError, encodeHeaders } from './hpack';

/** What we advertise. The receive windows are large and credit is returned as data arrives: requests are small. */
const OUR_WINDOW = 1 << 20;
const MAX_STREAMS = 1000;
const MAX_HEADER_LIST = 64 << 10;
/** Header block fragments (HEADERS + CONTINUATION) buffered before decoding, at most. */
const MAX_HEADER_BLOCK = 256 << 10;

export type Headers = Map<string, string>;

/** A request stream handed to the router once its headers are complete. */
export interface StreamHandler {
  /** Request body bytes; END_STREAM is signalled by end(). */
  data(chunk: Buffer): void;
  end(): void;
  /** The peer reset the stream or the connection closed before the response finished. */
  cancel(): void;
}

export type Router = (stream: ResponseStream, headers: Headers) => StreamHandler;

/** The response half of a stream, what a call writes to. */
export interface ResponseStream {
  readonly id: number;
  /** True once trailers went out or the stream was reset. */
  readonly closed: boolean;
  readonly headersSent: boolean;
  /** Response headers as an HPACK block (sent once, before the first message; trailers-only answers skip them). */
  sendHeaders(block: Buffer): void;
  /** DATA, split by frame size and held back by flow control. */
  sendData(data: Buffer): void;
  /** Trailers with END_STREAM (after any queued data), or headers+trailers in one block when none were sent. */
  finish(trailers: ReadonlyArray<readonly [string, string]>): void;
  /** RST_STREAM. */
  reset(code: H2Error): void;
}

class Stream implements ResponseStream {
  closed = false;
  remoteEnded = false;
  headersSent = false;
  sendWindow: number;
  recvUnacked = 0;
  handler?: StreamHandler;
  /** Outbound DATA waiting for window, then the trailer block. */
  pending: Buffer[] = [];
  pendingTrailers?: Buffer;

  constructor(
    readonly id: number,
    private readonly conn: Connection,
  ) {
    this.sendWindow = conn.peerInitialWindow;
  }

  sendHeaders(block: Buffer): void {
    if (this.closed || this.headersSent) return;
    this.headersSent = true;
    this.conn.queueHeaders(this.id, block, false);
  }

  sendData(data: Buffer): void {
    if (this.closed) return;
    this.pending.push(data);
    this.conn.flushStream(this);
  }

  finish(trailers: ReadonlyArray<readonly [string, string]>): void {
    if (this.closed || this.pendingTrailers) return;
    this.pendingTrailers = encodeHeaders(trailers);
    this.conn.flushStream(this);
  }

  reset(code: H2Error): void {
    if (this.closed) return;
    this.conn.queue(frame(FrameType.RST_STREAM, 0, this.id, u32(code)));
    this.conn.closeStream(this);
  }
}

export class Connection {
  private readonly reader = new FrameReader(DEFAULT_MAX_FRAME);
  private readonly hpack = new HpackDecoder(4096, MAX_HEADER_LIST);
  private readonly streams = new Map<number, Stream>();
  private out: Buffer[] = [];
  private flushScheduled = false;
  private prefaceSeen = false;
  private pre: Buffer = EMPTY;
  private lastStreamId = 0;
  /** A header block being continued: its stream, flags of the HEADERS frame, fragments so far. */
  private continuing?: { stream: number; flags: number; parts: Buffer[]; size: number };
  private connSendWindow = DEFAULT_WINDOW;
  private connRecvUnacked = 0;
  private peerMaxFrame = DEFAULT_MAX_FRAME;
  peerInitialWindow = DEFAULT_WINDOW;
  private goingAway = false;
  private dead = false;
  /** Called when the connection has no streams left after goAway(), and when it closes. */
  onIdle?: () => void;

  constructor(
    private readonly socket: Socket,
    private readonly route: Router,
  ) {
    socket.setNoDelay?.(true);
    this.queue(frame(FrameType.SETTINGS, 0, 0, settingsPayload([
      [Setting.MAX_CONCURRENT_STREAMS, MAX_STREAMS],
      [Setting.INITIAL_WINDOW_SIZE, OUR_WINDOW],
      [Setting.MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST],
    ])));
    this.queue(frame(FrameType.WINDOW_UPDATE, 0, 0, u32(OUR_WINDOW - DEFAULT_WINDOW)));
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', () => this.close());
    socket.on('close', () => this.close());
  }

  get activeStreams(): number {
    return this.streams.size;
  }

  private receive(chunk: Buffer): void {
    if (this.dead) return;
    try {
      if (!this.prefaceSeen) {
        this.pre = this.pre.length ? Buffer.concat([this.pre, chunk]) : chunk;
        if (this.pre.length < PREFACE.length) {
          if (!PREFACE.subarray(0, this.pre.length).equals(this.pre)) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'not an HTTP/2 client preface');
          return;
        }
        if (!this.pre.subarray(0, PREFACE.length).equals(PREFACE)) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'not an HTTP/2 client preface');
        this.prefaceSeen = true;
        chunk = this.pre.subarray(PREFACE.length);
        this.pre = EMPTY;
      }
      for (const f of this.reader.push(chunk)) this.onFrame(f);
    } catch (e) {
      if (e instanceof ConnectionError) this.fail(e.code);
      else if (e instanceof HpackError) this.fail(H2Error.COMPRESSION_ERROR);
      else throw e;
    }
    this.flush();
  }

  private onFrame(f: Frame): void {
    if (this.continuing && f.type !== FrameType.CONTINUATION) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'header block interrupted');
    switch (f.type) {
      case FrameType.DATA:
        return this.onData(f);
      case FrameType.HEADERS:
        return this.onHeaders(f);
      case FrameType.CONTINUATION:
        return this.onContinuation(f);
      case FrameType.RST_STREAM:
        if (f.stream === 0 || f.payload.length !== 4) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'bad RST_STREAM');
        return this.onReset(f.stream);
      case FrameType.SETTINGS:
        return this.onSettings(f);
      case FrameType.PING:
        if (f.stream !== 0 || f.payload.length !== 8) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'bad PING');
        if (!(f.flags & Flag.ACK)) this.queue(frame(FrameType.PING, Flag.ACK, 0, f.payload));
        return;
      case FrameType.GOAWAY:
        // The client will open no more streams; the ones running finish normally.
        return;
      case FrameType.WINDOW_UPDATE:
        return this.onWindowUpdate(f);
      case FrameType.PUSH_PROMISE:
        throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'clients cannot push');
      default:
        // PRIORITY and unknown frame types are ignored (RFC 9113 §4.1, §5.3.2).
        return;
    }
  }

  private onSettings(f: Frame): void {
    if (f.stream !== 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (f.flags & Flag.ACK) {
      if (f.payload.length !== 0) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'SETTINGS ack with a payload');
      return;
    }
    if (f.payload.length % 6 !== 0) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'SETTINGS payload not a multiple of 6');
    for (let o = 0; o < f.payload.length; o += 6) {
      const id = f.payload.readUInt16BE(o);
      const v = f.payload.readUInt32BE(o + 2);
      if (id === Setting.INITIAL_WINDOW_SIZE) {
        if (v > MAX_WINDOW) throw new ConnectionError(H2Error.FLOW_CONTROL_ERROR, 'SETTINGS_INITIAL_WINDOW_SIZE too large');
        const delta = v - this.peerInitialWindow;
        this.peerInitialWindow = v;
        for (const s of this.streams.values()) s.sendWindow += delta;
      } else if (id === Setting.MAX_FRAME_SIZE) {
        if (v < DEFAULT_MAX_FRAME || v > 16_777_215) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'bad SETTINGS_MAX_FRAME_SIZE');
        this.peerMaxFrame = v;
      } else if (id === Setting.ENABLE_PUSH && v > 1) {
        throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'bad SETTINGS_ENABLE_PUSH');
      }
      // HEADER_TABLE_SIZE bounds a dynamic table our encoder never uses; the rest are advisory for a server.
    }
    this.queue(frame(FrameType.SETTINGS, Flag.ACK, 0));
    for (const s of this.streams.values()) this.flushStream(s);
  }

  private onWindowUpdate(f: Frame): void {
    if (f.payload.length !== 4) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'bad WINDOW_UPDATE');
    const inc = f.payload.readUInt32BE(0) & 0x7fffffff;
    if (f.stream === 0) {
      if (inc === 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
      this.connSendWindow += inc;
      if (this.connSendWindow > MAX_WINDOW) throw new ConnectionError(H2Error.FLOW_CONTROL_ERROR, 'connection window overflow');
      for (const s of this.streams.values()) this.flushStream(s);
      return;
    }
    const s = this.streams.get(f.stream);
    if (!s) return; // a stream that already finished
    if (inc === 0 || s.sendWindow + inc > MAX_WINDOW) {
      s.reset(inc === 0 ? H2Error.PROTOCOL_ERROR : H2Error.FLOW_CONTROL_ERROR);
      s.handler?.cancel();
      return;
    }
    s.sendWindow += inc;
    this.flushStream(s);
  }

  private onHeaders(f: Frame): void {
    if (f.stream === 0 || f.stream % 2 === 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'HEADERS on an invalid stream id');
    let block = unpad(f);
    if (f.flags & Flag.PRIORITY) {
      if (block.length < 5) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'HEADERS priority fields truncated');
      block = block.subarray(5);
    }
    if (f.flags & Flag.END_HEADERS) this.onHeaderBlock(f.stream, f.flags, block);
    else this.continuing = { stream: f.stream, flags: f.flags, parts: [block], size: block.length };
  }

  private onContinuation(f: Frame): void {
    const c = this.continuing;
    if (!c || f.stream !== c.stream) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'unexpected CONTINUATION');
    c.parts.push(f.payload);
    c.size += f.payload.length;
    if (c.size > MAX_HEADER_BLOCK) throw new ConnectionError(H2Error.ENHANCE_YOUR_CALM, 'header block too large');
    if (f.flags & Flag.END_HEADERS) {
      this.continuing = undefined;
      this.onHeaderBlock(c.stream, c.flags, Buffer.concat(c.parts));
    }
  }

  private onHeaderBlock(id: number, flags: number, block: Buffer): void {
    // Decode every block, even one we refuse: the decoder's dynamic table must track the peer's encoder.
    const list = this.hpack.decode(block);
    const existing = this.streams.get(id);
    if (existing) {
      // Trailers from the client: gRPC sends none of its own, but END_STREAM on them ends the request.
      if (!(flags & Flag.END_STREAM)) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'second HEADERS without END_STREAM');
      this.endRemote(existing);
      return;
    }
    if (id <= this.lastStreamId) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'HEADERS on a closed stream');
    this.lastStreamId = id;
    const s = new Stream(id, this);
    if (this.goingAway || this.streams.size >= MAX_STREAMS) {
      this.queue(frame(FrameType.RST_STREAM, 0, id, u32(H2Error.REFUSED_STREAM)));
      return;
    }
    this.streams.set(id, s);
    const headers: Headers = new Map();
    for (const [k, v] of list) headers.set(k, headers.has(k) ? `${headers.get(k)!},${v}` : v);
    s.handler = this.route(s, headers);
    if (flags & Flag.END_STREAM) this.endRemote(s);
  }

  private onData(f: Frame): void {
    if (f.stream === 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'DATA on stream 0');
    // Credit for the connection whatever becomes of the bytes, or a finished stream's DATA would starve others.
    this.connRecvUnacked += f.payload.length;
    if (this.connRecvUnacked >= OUR_WINDOW / 4) {
      this.queue(frame(FrameType.WINDOW_UPDATE, 0, 0, u32(this.connRecvUnacked)));
      this.connRecvUnacked = 0;
    }
    const s = this.streams.get(f.stream);
    if (!s) {
      if (f.stream > this.lastStreamId) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'DATA on an idle stream');
      return; // a stream we finished or refused
    }
    if (s.remoteEnded) {
      s.reset(H2Error.STREAM_CLOSED);
      s.handler?.cancel();
      return;
    }
    const data = unpad(f);
    s.recvUnacked += f.payload.length;
    if (!(f.flags & Flag.END_STREAM) && s.recvUnacked >= OUR_WINDOW / 4) {
      this.queue(frame(FrameType.WINDOW_UPDATE, 0, s.id, u32(s.recvUnacked)));
      s.recvUnacked = 0;
    }
    if (data.length > 0) s.handler?.data(data);
    if (f.flags & Flag.END_STREAM) this.endRemote(s);
  }

  private endRemote(s: Stream): void {
    if (s.remoteEnded) return;
    s.remoteEnded = true;
    s.handler?.end();
  }

  private onReset(id: number): void {
    const s = this.streams.get(id);
    if (!s) return;
    this.closeStream(s);
    s.handler?.cancel();
  }

  queueHeaders(id: number, block: Buffer, endStream: boolean): void {
    // One frame, or HEADERS + CONTINUATIONs when the block exceeds the peer's frame size.
    const max = this.peerMaxFrame;
    for (let o = 0, first = true; first || o < block.length; first = false) {
      const part = block.subarray(o, o + max);
      o += part.length;
      const last = o >= block.length;
      const type = first ? FrameType.HEADERS : FrameType.CONTINUATION;
      this.queue(frame(type, (last ? Flag.END_HEADERS : 0) | (first && endStream ? Flag.END_STREAM : 0), id, part));
    }
  }

  /** Sends what flow control allows of a stream's queued data, then its trailers once the data is all out. */
  flushStream(s: Stream): void {
    while (s.pending.length > 0 && !s.closed) {
      const allowed = Math.min(s.sendWindow, this.connSendWindow, this.peerMaxFrame);
      if (allowed <= 0) return;
      const head = s.pending[0]!;
      const n = Math.min(allowed, head.length);
      const b = Buffer.allocUnsafe(9 + n);
      writeHeader(b, 0, n, FrameType.DATA, 0, s.id);
      head.copy(b, 9, 0, n);
      this.queue(b);
      s.sendWindow -= n;
      this.connSendWindow -= n;
      if (n === head.length) s.pending.shift();
      else s.pending[0] = head.subarray(n);
    }
    if (s.pendingTrailers && !s.closed) {
      this.queueHeaders(s.id, s.pendingTrailers, true);
      this.closeStream(s);
    }
  }

  closeStream(s: Stream): void {
    if (s.closed) return;
    s.closed = true;
    s.pending = [];
    this.streams.delete(s.id);
    if (this.goingAway && this.streams.size === 0) this.endSocket();
  }

  /** FIN after the last frames; a client that does not close its side in a second is cut off. */
  private endSocket(): void {
    this.flush();
    this.socket.end();
    setTimeout(() => this.destroy(), 1000).unref();
  }

  queue(b: Buffer): void {
    if (this.dead) return;
    this.out.push(b);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.out.length === 0 || this.dead) return;
    const b = this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out);
    this.out = [];
    this.socket.write(b);
  }

  /** Graceful: GOAWAY now, streams in flight finish, the socket closes when the last one does. */
  goAway(): void {
    if (this.goingAway || this.dead) return;
    this.goingAway = true;
    this.queue(frame(FrameType.GOAWAY, 0, 0, Buffer.concat([u32(this.lastStreamId), u32(H2Error.NO_ERROR)])));
    if (this.streams.size === 0) this.endSocket();
  }

  private fail(code: H2Error): void {
    this.queue(frame(FrameType.GOAWAY, 0, 0, Buffer.concat([u32(this.lastStreamId), u32(code)])));
    this.flush();
    this.socket.end();
    this.close();
  }

  /** The socket is gone (or must go): every unfinished call is cancelled. */
  close(): void {
    if (this.dead) return;
    this.dead = true;
    const open = [...this.streams.values()];
    this.streams.clear();
    for (const s of open) {
      s.closed = true;
      s.handler?.cancel();
    }
    this.socket.destroySoon?.();
    this.onIdle?.();
  }

  destroy(): void {
    this.socket.destroy();
    this.close();
  }
}
