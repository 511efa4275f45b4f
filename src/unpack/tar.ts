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

interface PendingMeta {
  longName: string | null;
  longLink: string | null;
  pax: Map<string, Buffer> | null;
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
  private pending: PendingMeta = { longName: null, longLink: null, pax: null };
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

  push(buf: Uint8Array): void {
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

  private onHeader(h: Uint8Array, o: number): void {
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
    const pending = this.pending;
    this.pending = { longName: null, longLink: null, pax: null };

    let name = pending.longName ?? joinPrefix(posix ? readString(h, o + 345, 155) : '', readString(h, o, 100));
    let linkname = pending.longLink ?? readString(h, o + 157, 100);
    let uid = readNumber(h, o + 108, 8, 'uid', this.position);
    let gid = readNumber(h, o + 116, 8, 'gid', this.position);
    let mtimeSec = readNumber(h, o + 136, 12, 'mtime', this.position);
    let mtimeNsec = 0;
    let atimeSec = -1;
    let atimeNsec = 0;
    let devMajor = 0;
    let devMinor = 0;
    let xattrs: Map<string, Buffer> | null = null;
    let etype = type;
    if (etype === 'chardev' || etype === 'blockdev') {
      devMajor = readNumber(h, o + 329, 8, 'devmajor', this.position);
      devMinor = readNumber(h, o + 337, 8, 'devminor', this.position);
    }
    // Pre-POSIX archives mark directories with a trailing slash on a regular-file header.
    if (etype === 'file' && typeflag === 0 && name.endsWith('/')) etype = 'dir';

    const pax = pending.pax;
    if (pax) {
      for (const [key, value] of pax) {
        switch (key) {
          case 'path':
            name = paxString(value, key);
            break;
          case 'linkpath':
            linkname = paxString(value, key);
            break;
          case 'size':
            size = paxInteger(value, key);
            break;
          case 'uid':
            uid = paxInteger(value, key);
            break;
          case 'gid':
            gid = paxInteger(value, key);
            break;
          case 'mtime':
            [mtimeSec, mtimeNsec] = paxTime(value, key);
            break;
          case 'atime':
            [atimeSec, atimeNsec] = paxTime(value, key);
            break;
          case 'SCHILY.devmajor':
            devMajor = paxInteger(value, key);
            break;
          case 'SCHILY.devminor':
            devMinor = paxInteger(value, key);
            break;
          default:
            if (key.startsWith('SCHILY.xattr.')) {
              (xattrs ??= new Map()).set(key.slice(13), value);
            } else if (key.startsWith('GNU.sparse.')) {
              throw new UnpackError('unsupported', `"${name}" is a GNU sparse file (PAX ${key}); sparse files are not supported`);
            }
          // uname, gname, ctime, comment, charset, hdrcharset and vendor keys change nothing on disk.
        }
      }
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
      atimeSec,
      atimeNsec,
      linkname,
      devMajor,
      devMinor,
      xattrs,
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
        break;
      case 0x4b:
        this.pending.longLink = cString(buf, 'GNU long link name');
        break;
      case 0x78: {
        const records = parsePax(buf, this.position);
        if (this.pending.pax) for (const [k, v] of records) this.pending.pax.set(k, v);
        else this.pending.pax = records;
        break;
      }
      case 0x67:
        // Global headers are validated (a malformed one is a corrupt stream) and otherwise ignored.
        parsePax(buf, this.position);
        break;
    }
    this.state = this.padding > 0 ? State.Pad : State.Header;
  }
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

function entryType(typeflag: number, h: Uint8Array, o: number, pos: number): EntryType {
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

function isZeroBlock(h: Uint8Array, o: number): boolean {
  // Checking the checksum field first rejects almost every real header in one comparison.
  if (h[o + 148] !== 0) return false;
  for (let i = o; i < o + BLOCK; i++) if (h[i] !== 0) return false;
  return true;
}

function verifyChecksum(h: Uint8Array, o: number, pos: number): void {
  // The checksum field itself counts as eight spaces. The signed sum (old writers) only when unsigned fails.
  let unsigned = 8 * 0x20;
  for (let i = o; i < o + 148; i++) unsigned += h[i];
  for (let i = o + 156; i < o + BLOCK; i++) unsigned += h[i];
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

function pad(size: number): number {
  const r = size % BLOCK;
  return r === 0 ? 0 : BLOCK - r;
}

function readString(h: Uint8Array, o: number, n: number): string {
  let end = o;
  const max = o + n;
  while (end < max && h[end] !== 0) end++;
  return decodeName(h, o, end);
}

function decodeName(h: Uint8Array, start: number, end: number): string {
  let ascii = true;
  for (let i = start; i < end; i++) {
    if (h[i] > 0x7f) {
      ascii = false;
      break;
    }
  }
  const buf = Buffer.from(h.buffer, h.byteOffset + start, end - start);
  const s = buf.toString(ascii ? 'latin1' : 'utf8');
  // Paths travel to the kernel as UTF-8 strings; bytes that are not UTF-8 would be silently rewritten.
  if (!ascii && s.includes('\ufffd') && !buf.includes(Buffer.from('\ufffd'))) {
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

function readOctal(h: Uint8Array, o: number, n: number): number {
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
function readNumber(h: Uint8Array, o: number, n: number, field: string, pos: number): number {
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

/** PAX records: "<len> <key>=<value>\n", lengths in decimal including themselves. Values stay raw bytes. */
function parsePax(buf: Buffer, pos: number): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
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
    const key = buf.toString('utf8', sp + 1, eq);
    out.set(key, buf.subarray(eq + 1, end - 1));
    off = end;
  }
  return out;
}

function paxString(v: Buffer, key: string): string {
  const s = v.toString('utf8');
  if (s.includes('\0')) throw new UnpackError('corrupt', `PAX ${key} contains a NUL byte`);
  if (s.includes('\ufffd') && !v.includes(Buffer.from('\ufffd'))) throw new UnpackError('unsupported', `PAX ${key} is not valid UTF-8`);
  return s;
}

function paxInteger(v: Buffer, key: string): number {
  const s = v.toString('latin1');
  if (!/^[0-9]{1,16}$/.test(s)) throw new UnpackError('corrupt', `PAX ${key}="${s.slice(0, 40)}" is not a non-negative integer`);
  const n = Number(s);
  if (n > Number.MAX_SAFE_INTEGER) throw new UnpackError('limit', `PAX ${key}=${s} is too large`);
  return n;
}

/** PAX times: decimal seconds with an optional fraction (nanoseconds kept; finer digits dropped). */
function paxTime(v: Buffer, key: string): [number, number] {
  // The common form (what GNU tar and Go write), parsed in place: up to 15 digits, a dot, digits.
  let i = 0;
  let sec = 0;
  while (i < v.length && i < 15 && v[i] >= 0x30 && v[i] <= 0x39) sec = sec * 10 + (v[i++] - 0x30);
  if (i > 0 && (i === v.length || v[i] === 0x2e)) {
    let nsec = 0;
    let j = i + 1;
    let digits = 0;
    for (; j < v.length && v[j] >= 0x30 && v[j] <= 0x39; j++) {
      if (digits < 9) nsec = nsec * 10 + (v[j] - 0x30);
      digits++;
    }
    if (i === v.length || j === v.length) {
      for (; digits < 9; digits++) nsec *= 10;
      return [sec, nsec];
    }
  }
  return paxTimeSlow(v, key);
}

function paxTimeSlow(v: Buffer, key: string): [number, number] {
  const s = v.toString('latin1');
  const m = /^(-?[0-9]{1,15})(?:\.([0-9]*))?$/.exec(s);
  if (!m) throw new UnpackError('corrupt', `PAX ${key}="${s.slice(0, 40)}" is not a time`);
  let sec = Number(m[1]);
  let nsec = m[2] ? Number((m[2] + '000000000').slice(0, 9)) : 0;
  if (sec < 0 && nsec > 0) {
    // -1.5 means 1.5 s before the epoch: second -2, plus 0.5 s.
    sec -= 1;
    nsec = 1e9 - nsec;
  }
  return [sec, nsec];
}
