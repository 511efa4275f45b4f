/**
 * strata's streaming tar reader: a synchronous push parser. It never buffers file data; each chunk handed to
 * push() is parsed in place and file contents are passed on as (buffer, offset, length) views of that chunk, so
 * the applier can write them straight to disk. Only headers (512 bytes) and metadata records (GNU long names,
 * PAX headers: bounded by limits) are copied.
 *
 * Formats: ustar (prefix field), GNU (long names/links 'L'/'K', base-256 numbers), PAX ('x' per entry, 'g'
 * global headers read and ignored like containerd does). GNU sparse files are refused with a clear error.
 */
import { UnpackError } from './errors';

export type EntryType = 'file' | 'hardlink' | 'symlink' | 'chardev' | 'blockdev' | 'dir' | 'fifo';

export interface TarEntry {
  /** The name as stored in the archive (after PAX/GNU overrides); the applier normalises and checks it. */
  name: string;
  type: EntryType;
  /** Permission bits incl. setuid/setgid/sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeSec: number;
  mtimeNsec: number;
  /** -1 when the archive gave no access time. */
  atimeSec: number;
  atimeNsec: number;
  linkname: string;
  devMajor: number;
  devMinor: number;
  /** SCHILY.xattr.* records (name → raw value), or null when there are none. */
  xattrs: Map<string, Buffer> | null;
}

/** What the reader calls as it goes. Data views are only valid during the call. */
export interface TarSink {
  entry(e: TarEntry): void;
  data(buf: Uint8Array, offset: number, length: number): void;
  entryEnd(e: TarEntry): void;
}

export interface TarLimits {
  /** Largest PAX extended header or GNU long name/link record accepted. */
  maxMetaSize: number;
  /** Most entries (headers of real files, dirs, links...) accepted. */
  maxEntries: number;
  /** Most bytes accepted after the end-of-archive marker (padding written by tar implementations). */
  maxTrailing: number;
}

export const DEFAULT_TAR_LIMITS: TarLimits = {
  maxMetaSize: 1 << 20,
  maxEntries: 10_000_000,
  maxTrailing: 1 << 20,
};

const BLOCK = 512;

const enum State {
  Header,
  Data,
  Meta,
  Pad,
  End,
}

/**
 * What GNU long-name records and PAX headers say about the next entry. PAX values are parsed straight into these
 * fields as the records are read (no map of records per entry: every entry of a GNU tar --format=posix archive has
 * a PAX header); a later header overrides an earlier one.
 */
interface PendingMeta {
  longName: string | null;
  longLink: string | null;
  path: string | null;
  linkpath: string | null;
  size: number;
  uid: number;
  gid: number;
  /** Whether a PAX mtime was given (any value, negative ones too, is valid). */
  mtime: boolean;
  mtimeSec: number;
  mtimeNsec: number;
  atimeSec: number;
  atimeNsec: number;
  devMajor: number;
  devMinor: number;
  xattrs: Map<string, Buffer> | null;
  /** A GNU.sparse.* key seen: the entry is refused, naming it. */
  sparseKey: string | null;
}

/** -1 in a numeric field: the PAX header did not set it. */
function noMeta(): PendingMeta {
  return {
    longName: null,
    longLink: null,
    path: null,
    linkpath: null,
    size: -1,
    uid: -1,
    gid: -1,
    mtime: false,
    mtimeSec: 0,
    mtimeNsec: 0,
    atimeSec: -1,
    atimeNsec: 0,
    devMajor: -1,
    devMinor: -1,
    xattrs: null,
    sparseKey: null,
  };
}

export class TarReader {
  private state = State.Header;
  private readonly header = Buffer.alloc(BLOCK);
  private headerFill = 0;
  private remaining = 0;
  private padding = 0;
  private metaBuf: Buffer | null = null;
  private metaFill = 0;
  private metaKind = 0;
  private current: TarEntry | null = null;
  private pending: PendingMeta = noMeta();
  /** Whether pending holds anything (most entries have no metadata records before them, or one PAX header). */
  private hasPending = false;
  private zeroBlocks = 0;
  private trailing = 0;
  /** Offset in the whole stream, for error messages. */
  private position = 0;
  entries = 0;

  constructor(
    private readonly sink: TarSink,
    private readonly limits: TarLimits = DEFAULT_TAR_LIMITS,
  ) {}

  /** True once the end-of-archive marker was read. */
  get ended(): boolean {
    return this.state === State.End;
  }

  push(chunk: Uint8Array): void {
    // A Buffer view of the chunk (no copy): names decode straight from it, without a view per field.
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    let off = 0;
    const len = buf.length;
    while (off < len) {
      switch (this.state) {
        case State.Header: {
          // Fast path: a whole header inside this chunk is parsed in place, without a copy.
          if (this.headerFill === 0 && len - off >= BLOCK) {
            this.onHeader(buf, off);
            off += BLOCK;
            this.position += BLOCK;
            break;
          }
          const n = Math.min(BLOCK - this.headerFill, len - off);
          this.header.set(buf.subarray(off, off + n), this.headerFill);
          this.headerFill += n;
          off += n;
          this.position += n;
          if (this.headerFill === BLOCK) {
            this.headerFill = 0;
            this.onHeader(this.header, 0);
          }
          break;
        }
        case State.Data: {
          const n = Math.min(this.remaining, len - off);
          this.sink.data(buf, off, n);
          this.remaining -= n;
          off += n;
          this.position += n;
          if (this.remaining === 0) this.finishEntry();
          break;
        }
        case State.Meta: {
          const n = Math.min(this.remaining, len - off);
          (this.metaBuf as Buffer).set(buf.subarray(off, off + n), this.metaFill);
          this.metaFill += n;
          this.remaining -= n;
          off += n;
          this.position += n;
          if (this.remaining === 0) this.finishMeta();
          break;
        }
        case State.Pad: {
          const n = Math.min(this.padding, len - off);
          this.padding -= n;
          off += n;
          this.position += n;
          if (this.padding === 0) this.state = State.Header;
          break;
        }
        case State.End: {
          // Bytes after the end marker are hashed (they are part of the diffID) but never applied.
          this.trailing += len - off;
          this.position += len - off;
          if (this.trailing > this.limits.maxTrailing) {
            throw new UnpackError('limit', `${this.trailing} bytes of data after the tar end-of-archive marker (limit ${this.limits.maxTrailing})`);
          }
          off = len;
          break;
        }
      }
    }
  }

  /** Called when the input is exhausted: anything but a completed archive is a truncation. */
  finish(): void {
    if (this.state === State.End) return;
    if (this.state === State.Header && this.headerFill === 0 && this.zeroBlocks === 1) {
      // GNU tar accepts a lone zero block as the end; so does strata.
      this.state = State.End;
      return;
    }
    throw new UnpackError('truncated', `tar stream truncated at byte ${this.position}${this.current ? ` inside "${this.current.name}"` : ''} (no end-of-archive marker)`);
  }

  private onHeader(h: Buffer, o: number): void {
    if (isZeroBlock(h, o)) {
      this.zeroBlocks++;
      if (this.zeroBlocks >= 2) this.state = State.End;
      return;
    }
    if (this.zeroBlocks > 0) {
      throw new UnpackError('corrupt', `tar header at byte ${this.position - BLOCK} follows a zero block`);
    }
    verifyChecksum(h, o, this.position - BLOCK);
    const typeflag = h[o + 156];
    const ustar = h[o + 257] === 0x75 && h[o + 258] === 0x73 && h[o + 259] === 0x74 && h[o + 260] === 0x61 && h[o + 261] === 0x72;
    // POSIX ustar ("ustar\0") has a prefix field; GNU ("ustar  \0") keeps atime/ctime there instead.
    const posix = ustar && h[o + 262] === 0;
    let size = readNumber(h, o + 124, 12, 'size', this.position);

    switch (typeflag) {
      case 0x4c /* L */:
      case 0x4b /* K */:
      case 0x78 /* x */:
      case 0x67 /* g */: {
        if (size > this.limits.maxMetaSize) {
          throw new UnpackError('limit', `${metaName(typeflag)} of ${size} bytes at byte ${this.position - BLOCK} exceeds the limit of ${this.limits.maxMetaSize}`);
        }
        this.metaKind = typeflag;
        this.metaBuf = Buffer.allocUnsafe(size);
        this.metaFill = 0;
        this.remaining = size;
        this.padding = pad(size);
        if (size === 0) this.finishMeta();
        else this.state = State.Meta;
        return;
      }
    }

    const type = entryType(typeflag, h, o, this.position - BLOCK);
    if (++this.entries > this.limits.maxEntries) {
      throw new UnpackError('limit', `more than ${this.limits.maxEntries} entries in the layer`);
    }
    const p = this.hasPending ? this.pending : null;
    if (p) {
      this.pending = noMeta();
      this.hasPending = false;
    }

    // The header's numeric fields are checked even where a PAX record overrides them (a broken header is a
    // corrupt archive, whatever else follows); its names are read only when nothing replaces them.
    const hname = p?.path ? null : headerName(h, o, posix, p);
    const name = p?.path ?? (hname as string);
    if (p?.sparseKey) throw new UnpackError('unsupported', `"${name}" is a GNU sparse file (PAX ${p.sparseKey}); sparse files are not supported`);
    const linkname = p?.linkpath ?? p?.longLink ?? readString(h, o + 157, 100);
    let uid = readNumber(h, o + 108, 8, 'uid', this.position);
    let gid = readNumber(h, o + 116, 8, 'gid', this.position);
    let mtimeSec = readNumber(h, o + 136, 12, 'mtime', this.position);
    let mtimeNsec = 0;
    let devMajor = 0;
    let devMinor = 0;
    let etype = type;
    if (etype === 'chardev' || etype === 'blockdev') {
      devMajor = readNumber(h, o + 329, 8, 'devmajor', this.position);
      devMinor = readNumber(h, o + 337, 8, 'devminor', this.position);
    }
    // Pre-POSIX archives mark directories with a trailing slash on a regular-file header (a PAX path says nothing).
    if (etype === 'file' && typeflag === 0 && (hname ?? headerName(h, o, posix, p)).endsWith('/')) etype = 'dir';
    if (p) {
      if (p.size >= 0) size = p.size;
      if (p.uid >= 0) uid = p.uid;
      if (p.gid >= 0) gid = p.gid;
      if (p.mtime) {
        mtimeSec = p.mtimeSec;
        mtimeNsec = p.mtimeNsec;
      }
      if (p.devMajor >= 0) devMajor = p.devMajor;
      if (p.devMinor >= 0) devMinor = p.devMinor;
    }

    const entry: TarEntry = {
      name,
      type: etype,
      mode: readNumber(h, o + 100, 8, 'mode', this.position) & 0o7777,
      uid,
      gid,
      size: etype === 'file' ? size : 0,
      mtimeSec,
      mtimeNsec,
      atimeSec: p ? p.atimeSec : -1,
      atimeNsec: p ? p.atimeNsec : 0,
      linkname,
      devMajor,
      devMinor,
      xattrs: p ? p.xattrs : null,
    };
    this.current = entry;
    this.sink.entry(entry);
    // Only regular files carry data that means something; other types' data (if any) is skipped.
    if (size > 0) {
      this.padding = pad(size);
      if (etype === 'file') {
        this.remaining = size;
        this.state = State.Data;
      } else {
        this.padding += size;
        this.sink.entryEnd(entry);
        this.current = null;
        this.state = State.Pad;
      }
    } else {
      this.sink.entryEnd(entry);
      this.current = null;
    }
  }

  private finishEntry(): void {
    const e = this.current as TarEntry;
    this.current = null;
    this.sink.entryEnd(e);
    this.state = this.padding > 0 ? State.Pad : State.Header;
  }

  private finishMeta(): void {
    const buf = this.metaBuf as Buffer;
    this.metaBuf = null;
    switch (this.metaKind) {
      case 0x4c:
        this.pending.longName = cString(buf, 'GNU long name');
        this.hasPending = true;
        break;
      case 0x4b:
        this.pending.longLink = cString(buf, 'GNU long link name');
        this.hasPending = true;
        break;
      case 0x78:
        parsePax(buf, this.position, this.pending);
        this.hasPending = true;
        break;
      case 0x67:
        // Global headers are validated (a malformed one is a corrupt stream) and otherwise ignored.
        parsePax(buf, this.position, null);
        break;
    }
    this.state = this.padding > 0 ? State.Pad : State.Header;
  }
}

/** The name the header block (or a GNU long name record) gives. */
function headerName(h: Buffer, o: number, posix: boolean, p: PendingMeta | null): string {
  return p?.longName ?? joinPrefix(posix ? readString(h, o + 345, 155) : '', readString(h, o, 100));
}

function metaName(typeflag: number): string {
  switch (typeflag) {
    case 0x4c:
      return 'GNU long name';
    case 0x4b:
      return 'GNU long link name';
    case 0x78:
      return 'PAX header';
    default:
      return 'PAX global header';
  }
}

function entryType(typeflag: number, h: Buffer, o: number, pos: number): EntryType {
  switch (typeflag) {
    case 0x30:
    case 0:
    case 0x37 /* contiguous file: a regular file everywhere but on old real-time systems */:
      return 'file';
    case 0x31:
      return 'hardlink';
    case 0x32:
      return 'symlink';
    case 0x33:
      return 'chardev';
    case 0x34:
      return 'blockdev';
    case 0x35:
      return 'dir';
    case 0x36:
      return 'fifo';
    case 0x53 /* S */:
      throw new UnpackError('unsupported', `"${readString(h, o, 100)}" is a GNU sparse file; sparse files are not supported`);
    default:
      throw new UnpackError(
        'unsupported',
        `unsupported tar entry type ${JSON.stringify(String.fromCharCode(typeflag))} for "${readString(h, o, 100)}" at byte ${pos}`,
      );
  }
}

function isZeroBlock(h: Buffer, o: number): boolean {
  // Checking the checksum field first rejects almost every real header in one comparison.
  if (h[o + 148] !== 0) return false;
  for (let i = o; i < o + BLOCK; i++) if (h[i] !== 0) return false;
  return true;
}

function verifyChecksum(h: Buffer, o: number, pos: number): void {
  // The checksum field itself counts as eight spaces. The signed sum (old writers) only when unsigned fails.
  const unsigned = byteSum(h, o) - byteSum8(h, o + 148) + 8 * 0x20;
  const stored = readOctal(h, o + 148, 8);
  if (stored === unsigned) return;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : h[o + i];
    signed += b > 127 ? b - 256 : b;
  }
  if (stored !== signed) {
    throw new UnpackError('corrupt', `bad tar header checksum at byte ${pos} (stored ${stored}, computed ${unsigned})`);
  }
}

/** A 32-bit view of every buffer headers come from (the ring's, mostly), made once. */
let wordsOf: ArrayBufferLike | null = null;
let words: Uint32Array<ArrayBufferLike> = new Uint32Array(0);

/**
 * The sum of a header's 512 bytes. Every entry costs one or two headers, so this adds a word at a time: two
 * bytes per 16-bit lane (128 words × 2 × 255 = 65,280 fits a lane). Headers in the ring sit at multiples of 512;
 * an unaligned one (a caller's own buffer) is summed byte by byte.
 */
function byteSum(h: Buffer, o: number): number {
  const at = h.byteOffset + o;
  if ((at & 3) !== 0) {
    let sum = 0;
    for (let i = o; i < o + BLOCK; i++) sum += h[i];
    return sum;
  }
  if (wordsOf !== h.buffer) {
    wordsOf = h.buffer;
    words = new Uint32Array(h.buffer, 0, h.buffer.byteLength >>> 2);
  }
  let lanes = 0;
  for (let w = at >>> 2, end = w + BLOCK / 4; w < end; w++) {
    const x = words[w];
    lanes += (x & 0x00ff00ff) + ((x >>> 8) & 0x00ff00ff);
  }
  return (lanes % 0x10000) + Math.floor(lanes / 0x10000);
}

function byteSum8(h: Buffer, o: number): number {
  return h[o] + h[o + 1] + h[o + 2] + h[o + 3] + h[o + 4] + h[o + 5] + h[o + 6] + h[o + 7];
}

function pad(size: number): number {
  const r = size % BLOCK;
  return r === 0 ? 0 : BLOCK - r;
}

function readString(h: Buffer, o: number, n: number): string {
  let end = o;
  const max = o + n;
  while (end < max && h[end] !== 0) end++;
  return decodeName(h, o, end);
}

function decodeName(h: Buffer, start: number, end: number): string {
  let ascii = true;
  for (let i = start; i < end; i++) {
    if (h[i] > 0x7f) {
      ascii = false;
      break;
    }
  }
  if (ascii) return h.toString('latin1', start, end);
  const s = h.toString('utf8', start, end);
  // Paths travel to the kernel as UTF-8 strings; bytes that are not UTF-8 would be silently rewritten.
  if (s.includes('\ufffd') && !h.subarray(start, end).includes(Buffer.from('\ufffd'))) {
    throw new UnpackError('unsupported', `tar name ${JSON.stringify(s)} is not valid UTF-8`);
  }
  return s;
}

function cString(buf: Buffer, what: string): string {
  let end = buf.indexOf(0);
  if (end < 0) end = buf.length;
  const s = decodeName(buf, 0, end);
  if (s.length === 0) throw new UnpackError('corrupt', `empty ${what}`);
  return s;
}

function joinPrefix(prefix: string, name: string): string {
  return prefix ? `${prefix}/${name}` : name;
}

function readOctal(h: Buffer, o: number, n: number): number {
  let i = o;
  const end = o + n;
  while (i < end && (h[i] === 0x20 || h[i] === 0)) i++;
  let v = 0;
  for (; i < end; i++) {
    const c = h[i];
    if (c === 0x20 || c === 0) break;
    if (c < 0x30 || c > 0x37) return -1;
    v = v * 8 + (c - 0x30);
  }
  return v;
}

/** An octal or GNU base-256 numeric field. Negative or beyond 2^53 values are refused. */
function readNumber(h: Buffer, o: number, n: number, field: string, pos: number): number {
  const first = h[o];
  if (first & 0x80) {
    if (first === 0xff) throw new UnpackError('corrupt', `negative ${field} in tar header near byte ${pos}`);
    let v = first & 0x7f;
    for (let i = 1; i < n; i++) {
      v = v * 256 + h[o + i];
      if (v > Number.MAX_SAFE_INTEGER) throw new UnpackError('limit', `${field} in tar header near byte ${pos} is too large`);
    }
    return v;
  }
  const v = readOctal(h, o, n);
  if (v < 0) throw new UnpackError('corrupt', `invalid ${field} field in tar header near byte ${pos}`);
  return v;
}

/**
 * PAX records: "<len> <key>=<value>\n", lengths in decimal including themselves. Each value is parsed into `into`
 * as it is read; null only checks the records' syntax (global headers).
 */
function parsePax(buf: Buffer, pos: number, into: PendingMeta | null): void {
  let off = 0;
  while (off < buf.length) {
    // Some writers pad the header with NULs after the last record.
    if (buf[off] === 0) break;
    // The decimal length, read in place: up to 12 digits, then a space.
    let recLen = 0;
    let sp = off;
    for (; sp < buf.length && sp - off <= 12; sp++) {
      const c = buf[sp];
      if (c === 0x20) break;
      if (c < 0x30 || c > 0x39) throw new UnpackError('corrupt', `malformed PAX record length "${buf.toString('latin1', off, sp + 1)}" near byte ${pos}`);
      recLen = recLen * 10 + (c - 0x30);
    }
    if (sp === off || sp >= buf.length || buf[sp] !== 0x20) throw new UnpackError('corrupt', `malformed PAX record near byte ${pos}`);
    const end = off + recLen;
    if (recLen <= sp - off + 1 || end > buf.length || buf[end - 1] !== 0x0a) {
      throw new UnpackError('corrupt', `malformed PAX record (length ${recLen}) near byte ${pos}`);
    }
    const eq = buf.indexOf(0x3d, sp + 1);
    if (eq < 0 || eq >= end - 1) throw new UnpackError('corrupt', `PAX record without "=" near byte ${pos}`);
    if (into) paxRecord(into, buf.toString('utf8', sp + 1, eq), buf, eq + 1, end - 1);
    off = end;
  }
}

function paxRecord(p: PendingMeta, key: string, v: Buffer, start: number, end: number): void {
  switch (key) {
    case 'path':
      p.path = paxString(v, start, end, key);
      return;
    case 'linkpath':
      p.linkpath = paxString(v, start, end, key);
      return;
    case 'size':
      p.size = paxInteger(v, start, end, key);
      return;
    case 'uid':
      p.uid = paxInteger(v, start, end, key);
      return;
    case 'gid':
      p.gid = paxInteger(v, start, end, key);
      return;
    case 'mtime':
      paxTime(v, start, end, key);
      p.mtime = true;
      p.mtimeSec = timeSec;
      p.mtimeNsec = timeNsec;
      return;
    case 'atime':
      paxTime(v, start, end, key);
      p.atimeSec = timeSec;
      p.atimeNsec = timeNsec;
      return;
    case 'SCHILY.devmajor':
      p.devMajor = paxInteger(v, start, end, key);
      return;
    case 'SCHILY.devminor':
      p.devMinor = paxInteger(v, start, end, key);
      return;
  }
  if (key.startsWith('SCHILY.xattr.')) (p.xattrs ??= new Map()).set(key.slice(13), v.subarray(start, end));
  else if (key.startsWith('GNU.sparse.')) p.sparseKey = key;
  // uname, gname, ctime, comment, charset, hdrcharset and vendor keys change nothing on disk.
}

function paxString(v: Buffer, start: number, end: number, key: string): string {
  const nul = v.indexOf(0, start);
  if (nul >= 0 && nul < end) throw new UnpackError('corrupt', `PAX ${key} contains a NUL byte`);
  const s = v.toString('utf8', start, end);
  if (s.includes('\ufffd') && !v.subarray(start, end).includes(Buffer.from('\ufffd'))) throw new UnpackError('unsupported', `PAX ${key} is not valid UTF-8`);
  return s;
}

function paxInteger(v: Buffer, start: number, end: number, key: string): number {
  const n = end - start;
  let x = 0;
  for (let i = start; i < end; i++) {
    const c = v[i];
    if (c < 0x30 || c > 0x39 || n > 16) {
      throw new UnpackError('corrupt', `PAX ${key}="${v.toString('latin1', start, Math.min(end, start + 40))}" is not a non-negative integer`);
    }
    x = x * 10 + (c - 0x30);
  }
  if (n === 0) throw new UnpackError('corrupt', `PAX ${key}="" is not a non-negative integer`);
  if (x > Number.MAX_SAFE_INTEGER) throw new UnpackError('limit', `PAX ${key}=${v.toString('latin1', start, end)} is too large`);
  return x;
}

// paxTime's result (two numbers, without an array per call).
let timeSec = 0;
let timeNsec = 0;

/** PAX times: decimal seconds with an optional fraction (nanoseconds kept; finer digits dropped). */
function paxTime(v: Buffer, start: number, end: number, key: string): void {
  // The common form (what GNU tar and Go write), parsed in place: up to 15 digits, a dot, digits.
  let i = start;
  let sec = 0;
  while (i < end && i - start < 15 && v[i] >= 0x30 && v[i] <= 0x39) sec = sec * 10 + (v[i++] - 0x30);
  if (i > start && (i === end || v[i] === 0x2e)) {
    let nsec = 0;
    let j = i + 1;
    let digits = 0;
    for (; j < end && v[j] >= 0x30 && v[j] <= 0x39; j++) {
      if (digits < 9) nsec = nsec * 10 + (v[j] - 0x30);
      digits++;
    }
    if (i === end || j === end) {
      for (; digits < 9; digits++) nsec *= 10;
      timeSec = sec;
      timeNsec = nsec;
      return;
    }
  }
  paxTimeSlow(v.toString('latin1', start, end), key);
}

function paxTimeSlow(s: string, key: string): void {
  const m = /^(-?[0-9]{1,15})(?:\.([0-9]*))?$/.exec(s);
  if (!m) throw new UnpackError('corrupt', `PAX ${key}="${s.slice(0, 40)}" is not a time`);
  let sec = Number(m[1]);
  let nsec = m[2] ? Number((m[2] + '000000000').slice(0, 9)) : 0;
  if (sec < 0 && nsec > 0) {
    // -1.5 means 1.5 s before the epoch: second -2, plus 0.5 s.
    sec -= 1;
    nsec = 1e9 - nsec;
  }
  timeSec = sec;
  timeNsec = nsec;
}
