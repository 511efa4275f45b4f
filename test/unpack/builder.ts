/** Building layer archives byte by byte for the tests, including malformed ones. */
import { createHash } from 'node:crypto';
import * as zlib from 'node:zlib';
import { compress as zstdCompress } from 'zstd-napi';
import { endOfArchive, entryHeader, metaMember, padding, paxRecords, rawHeader, setChecksum, type WriteEntry } from '../../src/unpack/tarwrite';

export class TarBuilder {
  private readonly parts: Buffer[] = [];

  entry(e: WriteEntry, content?: Buffer | string): this {
    const data = content === undefined ? Buffer.alloc(0) : Buffer.from(content);
    this.parts.push(entryHeader({ ...e, size: e.type === 'file' ? data.length : 0 }));
    if (data.length) this.parts.push(data, Buffer.alloc(padding(data.length)));
    return this;
  }

  file(name: string, content: Buffer | string = '', o: Partial<WriteEntry> = {}): this {
    return this.entry({ name, type: 'file', mode: 0o644, ...o }, content);
  }

  dir(name: string, o: Partial<WriteEntry> = {}): this {
    return this.entry({ name, type: 'dir', mode: 0o755, ...o });
  }

  symlink(name: string, target: string, o: Partial<WriteEntry> = {}): this {
    return this.entry({ name, type: 'symlink', mode: 0o777, linkname: target, ...o });
  }

  hardlink(name: string, target: string, o: Partial<WriteEntry> = {}): this {
    return this.entry({ name, type: 'hardlink', linkname: target, ...o });
  }

  node(name: string, type: 'chardev' | 'blockdev' | 'fifo', major = 0, minor = 0, o: Partial<WriteEntry> = {}): this {
    return this.entry({ name, type, mode: 0o644, devMajor: major, devMinor: minor, ...o });
  }

  /** A PAX 'x' header applying to the next entry. */
  pax(records: Array<[string, Buffer | string]>): this {
    this.parts.push(metaMember('x', paxRecords(records)));
    return this;
  }

  /** A GNU 'L' (long name) or 'K' (long link) record for the next entry. */
  gnuLong(kind: 'L' | 'K', value: string): this {
    this.parts.push(metaMember(kind, Buffer.from(value + '\0'), '././@LongLink'));
    return this;
  }

  /** A header with any typeflag and fields, and optional data. */
  rawEntry(name: string, typeflag: string, data: Buffer = Buffer.alloc(0), size = data.length): this {
    this.parts.push(rawHeader({ name, mode: 0o644, uid: 0, gid: 0, size, mtime: 0, typeflag, linkname: '', devMajor: 0, devMinor: 0 }));
    if (data.length) this.parts.push(data, Buffer.alloc(padding(data.length)));
    return this;
  }

  raw(b: Buffer): this {
    this.parts.push(b);
    return this;
  }

  /** The archive with its end marker. */
  build(end = true): Buffer {
    return Buffer.concat(end ? [...this.parts, endOfArchive()] : this.parts);
  }
}

export function gzip(b: Buffer): Buffer {
  return zlib.gzipSync(b, { level: 1 });
}

export function zstd(b: Buffer): Buffer {
  return zstdCompress(b);
}

export function sha256(b: Buffer): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}

/** Flips a header's byte without fixing the checksum. */
export function corruptByte(b: Buffer, at: number): Buffer {
  const c = Buffer.from(b);
  c[at] ^= 0x55;
  return c;
}

export { setChecksum };
