/** gRPC over HTTP/2 details (grpc/doc/PROTOCOL-HTTP2.md): timeouts, status messages, length-prefixed messages. */

/** grpc-timeout: at most 8 digits and a unit; undefined when absent or malformed (then no deadline, like grpc-go). */
export function parseTimeoutMs(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(v);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unitMs: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };
  return n * unitMs[m[2]!]!;
}

/** grpc-message: UTF-8, then every byte outside printable ASCII and '%' itself percent-encoded. */
export function encodeGrpcMessage(msg: string): string {
  const bytes = Buffer.from(msg, 'utf8');
  let out = '';
  for (const b of bytes) {
    if (b >= 0x20 && b <= 0x7e && b !== 0x25) out += String.fromCharCode(b);
    else out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** One gRPC message on the wire: compressed flag, 4-byte big-endian length, the bytes. */
export function lengthPrefixed(msg: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(5 + msg.length);
  b[0] = 0;
  b.writeUInt32BE(msg.length, 1);
  b.set(msg, 5);
  return b;
}

/**
 * Cuts a request body into its messages. A compressed message (flag 1) is refused: strata accepts no
 * grpc-encoding (clients do not compress unless the server advertises it).
 */
export function splitMessages(body: Buffer): { messages: Buffer[] } | { error: string } {
  const messages: Buffer[] = [];
  let o = 0;
  while (o < body.length) {
    if (body.length - o < 5) return { error: 'truncated gRPC message prefix' };
    const flag = body[o]!;
    const len = body.readUInt32BE(o + 1);
    if (flag === 1) return { error: 'compressed gRPC messages are not supported' };
    if (flag !== 0) return { error: `invalid gRPC message flag ${flag}` };
    if (body.length - o - 5 < len) return { error: 'truncated gRPC message' };
    messages.push(body.subarray(o + 5, o + 5 + len));
    o += 5 + len;
  }
  return { messages };
}
