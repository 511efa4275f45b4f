/**
 * Writing tar headers: ustar blocks, with a PAX extended header in front whenever a field does not fit
 * (long names and link names, large ids or sizes, sub-second times, xattrs). Used by `snapctl diff` and by the
 * tests that build layers byte by byte (the low-level helpers let them write malformed archives on purpose).
 */

export type WriteType = 'file' | 'hardlink' | 'symlink' | 'chardev' | 'blockdev' | 'dir' | 'fifo';

export interface WriteEntry {
  name: string;
  type: WriteType;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  mtimeSec?: number;
  mtimeNsec?: number;
  linkname?: string;
  devMajor?: number;
  devMinor?: number;
  xattrs?: ReadonlyMap<string, Buffer> | Record<string, Buffer | string>;
}

export const TYPEFLAG: Record<WriteType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  chardev: '3',
  blockdev: '4',
  dir: '5',
  fifo: '6',
};

export interface RawHeader {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
  devMajor: number;
  devMinor: number;
  prefix?: string;
  /** 'ustar' (POSIX, with a prefix field) or 'gnu' ("ustar  \0"). */
  magic?: 'ustar' | 'gnu';
}

/** One 512-byte header block with its checksum. Fields too long are truncated (callers use PAX for those). */
export function rawHeader(h: RawHeader): Buffer {
  const b = Buffer.alloc(512);
  b.write(h.name, 0, 100, 'utf8');
  writeOctal(b, 100, 8, h.mode);
  writeOctal(b, 108, 8, h.uid);
  writeOctal(b, 116, 8, h.gid);
  writeOctal(b, 124, 12, h.size);
  writeOctal(b, 136, 12, h.mtime);
  b.write(h.typeflag, 156, 1, 'latin1');
  b.write(h.linkname, 157, 100, 'utf8');
  if (h.magic === 'gnu') b.write('ustar  \0', 257, 8, 'latin1');
  else b.write('ustar\x0000', 257, 8, 'latin1');
  writeOctal(b, 329, 8, h.devMajor);
  writeOctal(b, 337, 8, h.devMinor);
  if (h.prefix && h.magic !== 'gnu') b.write(h.prefix, 345, 155, 'utf8');
  setChecksum(b);
  return b;
}

export function setChecksum(b: Buffer): void {
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += b[i];
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
}

/** Octal when it fits, GNU base-256 otherwise (readers of both tar dialects accept it). */
function writeOctal(b: Buffer, off: number, len: number, v: number): void {
  const s = Math.trunc(v).toString(8);
  if (s.length <= len - 1 && v >= 0) {
    b.write(s.padStart(len - 1, '0') + '\0', off, len, 'latin1');
    return;
  }
  b[off] = 0x80;
  let x = BigInt(Math.trunc(v));
  for (let i = len - 1; i > 0; i--) {
    b[off + i] = Number(x & 0xffn);
    x >>= 8n;
  }
}

/** The body of a PAX extended header: "<len> <key>=<value>\n" records. */
export function paxRecords(records: ReadonlyArray<readonly [string, Buffer | string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of records) {
    const value = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
    const body = Buffer.byteLength(k) + value.length + 3; // ' ', '=', '\n'
    let len = body + String(body).length;
    if (String(len).length !== String(body).length) len = body + String(len).length;
    parts.push(Buffer.from(`${len} ${k}=`, 'utf8'), value, Buffer.from('\n'));
  }
  return Buffer.concat(parts);
}

/** A whole metadata member (PAX 'x'/'g', GNU 'L'/'K'): header + body + padding. */
export function metaMember(typeflag: 'x' | 'g' | 'L' | 'K', body: Buffer, name = '././@PaxHeader'): Buffer {
  const h = rawHeader({ name, mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 0, typeflag, linkname: '', devMajor: 0, devMinor: 0, magic: typeflag === 'L' || typeflag === 'K' ? 'gnu' : 'ustar' });
  return Buffer.concat([h, body, Buffer.alloc(padding(body.length))]);
}

export function padding(size: number): number {
  const r = size % 512;
  return r === 0 ? 0 : 512 - r;
}

const MAX_OCTAL_8 = 0o7777777;
const MAX_OCTAL_12 = 0o77777777777;

/**
 * The header block(s) for an entry: a PAX header first when needed, then the ustar header. Data and its
 * padding are the caller's to write.
 */
export function entryHeader(e: WriteEntry): Buffer {
  const records: Array<[string, Buffer | string]> = [];
  const nameBytes = Buffer.byteLength(e.name);
  let name = e.name;
  let prefix = '';
  if (nameBytes > 100) {
    const split = splitUstar(e.name);
    if (split) [prefix, name] = split;
    else {
      records.push(['path', e.name]);
      name = e.name.slice(0, 99);
    }
  }
  let linkname = e.linkname ?? '';
  if (Buffer.byteLength(linkname) > 100) {
    records.push(['linkpath', linkname]);
    linkname = linkname.slice(0, 99);
  }
  const uid = e.uid ?? 0;
  const gid = e.gid ?? 0;
  if (uid > MAX_OCTAL_8) records.push(['uid', String(uid)]);
  if (gid > MAX_OCTAL_8) records.push(['gid', String(gid)]);
  const size = e.type === 'file' ? (e.size ?? 0) : 0;
  if (size > MAX_OCTAL_12) records.push(['size', String(size)]);
  const mtime = e.mtimeSec ?? 0;
  if (e.mtimeNsec) records.push(['mtime', `${mtime}.${String(e.mtimeNsec).padStart(9, '0')}`]);
  if (e.xattrs) {
    const entries = e.xattrs instanceof Map ? [...e.xattrs] : Object.entries(e.xattrs);
    for (const [k, v] of entries) records.push([`SCHILY.xattr.${k}`, typeof v === 'string' ? Buffer.from(v) : v]);
  }
  const header = rawHeader({
    name,
    prefix,
    mode: e.mode ?? (e.type === 'dir' ? 0o755 : 0o644),
    uid: uid > MAX_OCTAL_8 ? 0 : uid,
    gid: gid > MAX_OCTAL_8 ? 0 : gid,
    size: size > MAX_OCTAL_12 ? 0 : size,
    mtime,
    typeflag: TYPEFLAG[e.type],
    linkname,
    devMajor: e.devMajor ?? 0,
    devMinor: e.devMinor ?? 0,
  });
  if (records.length === 0) return header;
  return Buffer.concat([metaMember('x', paxRecords(records)), header]);
}

/** ustar's prefix/name split at a '/', when both halves fit (prefix ≤ 155, name ≤ 100 bytes). */
function splitUstar(p: string): [string, string] | null {
  if (Buffer.byteLength(p) !== p.length) return null;
  for (let i = p.length - 1; i > 0; i--) {
    if (p[i] !== '/') continue;
    if (i <= 155 && p.length - i - 1 <= 100 && p.length - i - 1 > 0) return [p.slice(0, i), p.slice(i + 1)];
    if (i < p.length - 101) break;
  }
  return null;
}

/** The end-of-archive marker: two zero blocks. */
export function endOfArchive(): Buffer {
  return Buffer.alloc(1024);
}
