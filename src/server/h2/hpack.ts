/**
 * HPACK (RFC 7541) for the HTTP/2 gRPC server: a full decoder for request headers, and a stateless
 * encoder for response headers/trailers (static-table references and plain literals, no dynamic table).
 * Strings are bytes on the wire and map 1:1 to latin1 chars, so a string's length is its size in octets.
 */
import { huffmanDecode, latin1 } from './huffman';

export class HpackError extends Error {
  override name = 'HpackError';
}

/** RFC 7541 Appendix A: the static table; entry i has index i + 1. */
const STATIC_TABLE: ReadonlyArray<readonly [string, string]> = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''],
  ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''],
  ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''],
  ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''],
  ['www-authenticate', ''],
];
const STATIC_COUNT = STATIC_TABLE.length; // 61
const STATIC_NAMES = STATIC_TABLE.map(([n]) => n);
const STATIC_VALUES = STATIC_TABLE.map(([, v]) => v);
/** RFC 7541 §4.1: an entry's size counts 32 octets of overhead besides its name and value. */
const ENTRY_OVERHEAD = 32;
const MAX_INT = 0x7fffffff;

/** Decoder state of one connection. After an HpackError its state is unspecified: the connection must end (COMPRESSION_ERROR). */
export class HpackDecoder {
  /** Current limit, changed by dynamic table size updates; never above maxTableSize. */
  private capacity: number;
  private size = 0;
  // The dynamic table is a ring, newest first: index 62 + i lives at (head + i) & mask.
  private names: string[] = new Array<string>(16).fill('');
  private values: string[] = new Array<string>(16).fill('');
  private head = 0;
  private count = 0;
  /** Read position in the block being decoded. */
  private pos = 0;

  /** maxTableSize: the SETTINGS_HEADER_TABLE_SIZE we advertise; maxHeaderListSize: refuse larger decoded lists. */
  constructor(
    private readonly maxTableSize = 4096,
    private readonly maxHeaderListSize = 64 * 1024,
  ) {
    this.capacity = maxTableSize;
  }

  decode(block: Uint8Array): Array<[string, string]> {
    const buf = Buffer.isBuffer(block) ? block : Buffer.from(block.buffer, block.byteOffset, block.byteLength);
    const headers: Array<[string, string]> = [];
    let listSize = 0;
    this.pos = 0;
    while (this.pos < buf.length) {
      const b = buf[this.pos];
      let name: string, value: string;
      if (b & 0x80) {
        // Indexed header field (§6.1).
        const index = this.readInt(buf, 7);
        name = this.nameAt(index);
        value = index <= STATIC_COUNT ? STATIC_VALUES[index - 1] : this.values[(this.head + index - STATIC_COUNT - 1) & (this.values.length - 1)]; // nameAt checked the range
      } else if ((b & 0xe0) === 0x20) {
        // Dynamic table size update (§6.3): only before the first field of a block.
        if (headers.length > 0) throw new HpackError('dynamic table size update after a header field');
        const size = this.readInt(buf, 5);
        if (size > this.maxTableSize) throw new HpackError(`dynamic table size update to ${size} above the maximum ${this.maxTableSize}`);
        this.capacity = size;
        this.evictTo(size);
        continue;
      } else {
        // Literal with incremental indexing (01, 6-bit prefix), without indexing (0000) or never indexed (0001), 4-bit prefix.
        const indexing = (b & 0xc0) === 0x40;
        const index = this.readInt(buf, indexing ? 6 : 4);
        name = index === 0 ? this.readString(buf) : this.nameAt(index);
        value = this.readString(buf);
        if (indexing) this.insert(name, value);
      }
      listSize += name.length + value.length + ENTRY_OVERHEAD;
      if (listSize > this.maxHeaderListSize) throw new HpackError(`header list larger than ${this.maxHeaderListSize} octets`);
      headers.push([name, value]);
    }
    return headers;
  }

  private nameAt(index: number): string {
    if (index === 0) throw new HpackError('index 0');
    if (index <= STATIC_COUNT) return STATIC_NAMES[index - 1];
    const i = index - STATIC_COUNT - 1;
    if (i >= this.count) throw new HpackError(`index ${index} out of range (dynamic table has ${this.count} entries)`);
    return this.names[(this.head + i) & (this.names.length - 1)];
  }

  /** §5.1: an integer with an N-bit prefix, refused past 2^31 - 1 or past the end of the block. */
  private readInt(buf: Buffer, prefixBits: number): number {
    const max = (1 << prefixBits) - 1;
    let value = buf[this.pos++] & max;
    if (value < max) return value;
    for (let shift = 0; shift <= 28; shift += 7) {
      if (this.pos >= buf.length) throw new HpackError('truncated integer');
      const b = buf[this.pos++];
      value += (b & 0x7f) * 2 ** shift;
      if (value > MAX_INT) throw new HpackError('integer overflow');
      if ((b & 0x80) === 0) return value;
    }
    throw new HpackError('integer overflow (too many continuation octets)');
  }

  /** §5.2: a string literal, Huffman-coded when the first bit is set. */
  private readString(buf: Buffer): string {
    if (this.pos >= buf.length) throw new HpackError('truncated header field: string missing');
    const huffman = (buf[this.pos] & 0x80) !== 0;
    const len = this.readInt(buf, 7);
    const start = this.pos, end = start + len;
    if (end > buf.length) throw new HpackError(`string of ${len} octets runs past the end of the header block`);
    this.pos = end;
    if (!huffman) return latin1(buf, start, end);
    const s = huffmanDecode(buf, start, end);
    if (s === undefined) throw new HpackError('invalid Huffman code (EOS, or padding not a short run of ones)');
    return s;
  }

  /** §4.4: evicts until the entry fits; an entry larger than the whole table just empties it. */
  private insert(name: string, value: string): void {
    const entrySize = name.length + value.length + ENTRY_OVERHEAD;
    if (entrySize > this.capacity) {
      this.evictTo(0);
      return;
    }
    this.evictTo(this.capacity - entrySize);
    if (this.count === this.names.length) this.grow();
    const mask = this.names.length - 1;
    this.head = (this.head - 1) & mask;
    this.names[this.head] = name;
    this.values[this.head] = value;
    this.count++;
    this.size += entrySize;
  }

  private evictTo(limit: number): void {
    const mask = this.names.length - 1;
    while (this.size > limit) {
      const oldest = (this.head + this.count - 1) & mask;
      this.size -= this.names[oldest].length + this.values[oldest].length + ENTRY_OVERHEAD;
      this.names[oldest] = this.values[oldest] = ''; // let the strings go
      this.count--;
    }
  }

  private grow(): void {
    const names = new Array<string>(this.names.length * 2).fill('');
    const values = new Array<string>(this.names.length * 2).fill('');
    const mask = this.names.length - 1;
    for (let i = 0; i < this.count; i++) {
      names[i] = this.names[(this.head + i) & mask];
      values[i] = this.values[(this.head + i) & mask];
    }
    this.names = names;
    this.values = values;
    this.head = 0;
  }
}

// Encoder lookups. Names never contain '\n', so name + '\n' + value identifies a pair.
const STATIC_PAIR_INDEX = new Map<string, number>();
const STATIC_NAME_INDEX = new Map<string, number>();
STATIC_TABLE.forEach(([name, value], i) => {
  STATIC_PAIR_INDEX.set(`${name}\n${value}`, i + 1);
  if (!STATIC_NAME_INDEX.has(name)) STATIC_NAME_INDEX.set(name, i + 1);
});

function writeInt(out: Buffer, p: number, prefixBits: number, flags: number, value: number): number {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out[p++] = flags | value;
    return p;
  }
  out[p++] = flags | max;
  value -= max;
  while (value >= 0x80) {
    out[p++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  out[p++] = value;
  return p;
}

function writeString(out: Buffer, p: number, s: string): number {
  p = writeInt(out, p, 7, 0, s.length);
  return p + out.write(s, p, 'latin1');
}

export function encodeHeaders(headers: ReadonlyArray<readonly [string, string]>): Buffer {
  // Worst case per field: 2 octets of representation + name index, then up to 6 octets of length per string.
  let cap = 0;
  for (const [name, value] of headers) cap += name.length + value.length + 14;
  const out = Buffer.allocUnsafe(cap);
  let p = 0;
  for (const [name, value] of headers) {
    const exact = STATIC_PAIR_INDEX.get(`${name}\n${value}`);
    if (exact !== undefined) {
      out[p++] = 0x80 | exact;
      continue;
    }
    const nameIndex = STATIC_NAME_INDEX.get(name);
    if (nameIndex !== undefined) p = writeInt(out, p, 4, 0x00, nameIndex);
    else {
      out[p++] = 0x00;
      p = writeString(out, p, name);
    }
    p = writeString(out, p, value);
  }
  return out.subarray(0, p);
}
