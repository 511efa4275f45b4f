/**
 * HTTP/2 frames (RFC 9113 §4, §6): the types, flags, settings and error codes the gRPC server uses, a frame
 * builder, and a reader that cuts a byte stream into frames without copying more than a frame's payload.
 */

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const enum FrameType {
  DATA = 0x0,
  HEADERS = 0x1,
  PRIORITY = 0x2,
  RST_STREAM = 0x3,
  SETTINGS = 0x4,
  PUSH_PROMISE = 0x5,
  PING = 0x6,
  GOAWAY = 0x7,
  WINDOW_UPDATE = 0x8,
  CONTINUATION = 0x9,
}

export const enum Flag {
  END_STREAM = 0x1,
  ACK = 0x1,
  END_HEADERS = 0x4,
  PADDED = 0x8,
  PRIORITY = 0x20,
}

export const enum Setting {
  HEADER_TABLE_SIZE = 0x1,
  ENABLE_PUSH = 0x2,
  MAX_CONCURRENT_STREAMS = 0x3,
  INITIAL_WINDOW_SIZE = 0x4,
  MAX_FRAME_SIZE = 0x5,
  MAX_HEADER_LIST_SIZE = 0x6,
}

export const enum H2Error {
  NO_ERROR = 0x0,
  PROTOCOL_ERROR = 0x1,
  INTERNAL_ERROR = 0x2,
  FLOW_CONTROL_ERROR = 0x3,
  STREAM_CLOSED = 0x5,
  FRAME_SIZE_ERROR = 0x6,
  REFUSED_STREAM = 0x7,
  CANCEL = 0x8,
  COMPRESSION_ERROR = 0x9,
  ENHANCE_YOUR_CALM = 0xb,
}

/** The protocol's defaults before a SETTINGS frame says otherwise. */
export const DEFAULT_WINDOW = 65_535;
export const DEFAULT_MAX_FRAME = 16_384;
export const MAX_WINDOW = 2 ** 31 - 1;

/** A connection-level protocol violation: the connection ends with GOAWAY and this code. */
export class ConnectionError extends Error {
  constructor(
    readonly code: H2Error,
    message: string,
  ) {
    super(message);
  }
}

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

export function frame(type: FrameType, flags: number, stream: number, payload: Uint8Array = EMPTY): Buffer {
  const b = Buffer.allocUnsafe(9 + payload.length);
  writeHeader(b, 0, payload.length, type, flags, stream);
  b.set(payload, 9);
  return b;
}

export function writeHeader(b: Buffer, at: number, length: number, type: FrameType, flags: number, stream: number): void {
  b[at] = (length >>> 16) & 0xff;
  b[at + 1] = (length >>> 8) & 0xff;
  b[at + 2] = length & 0xff;
  b[at + 3] = type;
  b[at + 4] = flags;
  b.writeUInt32BE(stream, at + 5);
}

export const EMPTY = Buffer.alloc(0);

export function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

export function settingsPayload(pairs: ReadonlyArray<readonly [Setting, number]>): Buffer {
  const b = Buffer.allocUnsafe(6 * pairs.length);
  pairs.forEach(([id, v], i) => {
    b.writeUInt16BE(id, 6 * i);
    b.writeUInt32BE(v, 6 * i + 2);
  });
  return b;
}

/**
 * Accumulates socket chunks and yields whole frames. A frame larger than maxFrame (what we advertised) is a
 * connection error before its payload is buffered, so a peer cannot make us hold more than one frame.
 */
export class FrameReader {
  private buf: Buffer = EMPTY;

  constructor(private readonly maxFrame: number) {}

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: Frame[] = [];
    let o = 0;
    while (this.buf.length - o >= 9) {
      const b = this.buf;
      const len = (b[o]! << 16) | (b[o + 1]! << 8) | b[o + 2]!;
      if (len > this.maxFrame) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, `frame of ${len} bytes exceeds SETTINGS_MAX_FRAME_SIZE ${this.maxFrame}`);
      if (b.length - o < 9 + len) break;
      out.push({ type: b[o + 3]!, flags: b[o + 4]!, stream: b.readUInt32BE(o + 5) & 0x7fffffff, payload: b.subarray(o + 9, o + 9 + len) });
      o += 9 + len;
    }
    // Keep only the unread tail; frames handed out still reference the old buffer, which is fine (read-only).
    this.buf = o === this.buf.length ? EMPTY : this.buf.subarray(o);
    return out;
  }
}

/** Strips the padding of a PADDED frame (RFC 9113 §6.1): the first byte is the pad length. */
export function unpad(f: Frame): Buffer {
  if (!(f.flags & Flag.PADDED)) return f.payload;
  if (f.payload.length < 1) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'padded frame without a pad length');
  const pad = f.payload[0]!;
  if (pad >= f.payload.length) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'padding longer than the frame');
  return f.payload.subarray(1, f.payload.length - pad);
}
