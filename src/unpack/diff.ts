/**
 * Diffs as OCI layers: the changes of a snapshot against its parent, as a tar stream (whiteouts for deletions,
 * opaque markers, hardlinks kept as links). Two sources:
 *  - an overlay upper directory: it already is the change set (0/0 character devices are deletions, an opaque
 *    xattr marks a replaced directory), so the diff is one walk of it;
 *  - two trees (any other driver): walked side by side; metadata or content changes are emitted, names only in
 *    the old tree become whiteouts.
 * The walk is a synchronous generator pulled by a Readable in ~1 MiB steps, so a daemon serving other calls
 * is never blocked for long and memory stays bounded by the stream's high-water marks.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { native } from '../../native';
import { UnpackError } from './errors';
import { endOfArchive, entryHeader, padding, type WriteEntry, type WriteType } from './tarwrite';

export type DiffSource = { kind: 'upper'; dir: string; overlayPrefix?: string } | { kind: 'trees'; newDir: string; oldDir: string | null };

export interface DiffResult {
  diffId: string;
  digest: string;
  size: number;
  entries: number;
  durationMs: number;
}

const CHUNK = 1 << 20;
const S_IFMT = 0o170000;

interface Meta {
  st: fs.BigIntStats;
  type: WriteType | 'socket';
  xattrs: Map<string, Buffer>;
  /** The filesystem would not list this entry's xattrs: they cannot be compared, so the entry counts as changed. */
  xattrsUnknown?: boolean;
}

function typeOf(st: fs.BigIntStats): WriteType | 'socket' {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'chardev';
  if (st.isBlockDevice()) return 'blockdev';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}

function readMeta(p: string, overlayPrefix: string): Meta {
  const st = fs.lstatSync(p, { bigint: true });
  const xattrs = new Map<string, Buffer>();
  const n = native();
  let names: string[] = [];
  let xattrsUnknown = false;
  try {
    names = n.llistxattr(p);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw e;
    // No xattr support here (a filesystem without them, or zfs-fuse's read-only datasets, which refuse to list
    // them). Comparing against this entry then says "changed": a larger diff, never a wrong one.
    xattrsUnknown = true;
  }
  for (const name of names.sort()) {
    if (name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.')) {
      const key = name.slice(name.indexOf('overlay.') + 8);
      if (name.startsWith(overlayPrefix) && (key === 'redirect' || key === 'metacopy')) {
        throw new UnpackError('unsupported', `"${p}" carries overlay ${key}; diffs of redirect_dir/metacopy layers are not supported`);
      }
      continue;
    }
    const v = n.lgetxattr(p, name);
    if (v) xattrs.set(name, v);
  }
  return { st, type: typeOf(st), xattrs, xattrsUnknown };
}

function major(rdev: bigint): number {
  const r = Number(rdev);
  return (r >> 8) & 0xfff;
}

function minor(rdev: bigint): number {
  const r = Number(rdev);
  return (r & 0xff) | ((r >> 12) & 0xfff00);
}

class Emitter {
  entries = 0;
  /** dev:ino → first archive name, for hardlinks. */
  private readonly links = new Map<string, string>();

  constructor(private readonly overlayPrefix: string) {}

  *entry(name: string, hostPath: string, m: Meta): Generator<Buffer> {
    if (m.type === 'socket') return; // a tar cannot hold one; docker and containerd skip them too
    const st = m.st;
    const base: WriteEntry = {
      name: m.type === 'dir' ? `${name}/` : name,
      type: m.type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtimeSec: Number(st.mtimeNs / 1_000_000_000n),
      mtimeNsec: Number(st.mtimeNs % 1_000_000_000n),
      xattrs: m.xattrs.size ? m.xattrs : undefined,
    };
    if (m.type === 'file' && st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      const first = this.links.get(key);
      if (first !== undefined) {
        this.entries++;
        yield entryHeader({ ...base, type: 'hardlink', linkname: first, xattrs: undefined });
        return;
      }
      this.links.set(key, name);
    }
    if (m.type === 'symlink') base.linkname = fs.readlinkSync(hostPath);
    if (m.type === 'chardev' || m.type === 'blockdev') {
      base.devMajor = major(st.rdev);
      base.devMinor = minor(st.rdev);
    }
    const size = m.type === 'file' ? Number(st.size) : 0;
    this.entries++;
    yield entryHeader({ ...base, size });
    if (size > 0) yield* fileData(hostPath, size);
  }

  *whiteout(dirName: string, name: string): Generator<Buffer> {
    this.entries++;
    yield entryHeader({ name: dirName ? `${dirName}/.wh.${name}` : `.wh.${name}`, type: 'file', mode: 0o644, size: 0 });
  }

  *opaque(dirName: string): Generator<Buffer> {
    this.entries++;
    yield entryHeader({ name: dirName ? `${dirName}/.wh..wh..opq` : '.wh..wh..opq', type: 'file', mode: 0o644, size: 0 });
  }

  isOpaque(p: string): boolean {
    const v = native().lgetxattr(p, this.overlayPrefix + 'opaque');
    return v !== null && v.toString() === 'y';
  }
}

/** Exactly `size` bytes of the file (zero-filled if it shrank meanwhile, cut if it grew), then the padding. */
function* fileData(p: string, size: number): Generator<Buffer> {
  const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    let left = size;
    while (left > 0) {
      const buf = Buffer.allocUnsafe(Math.min(left, CHUNK));
      let got = 0;
      while (got < buf.length) {
        const r = fs.readSync(fd, buf, got, buf.length - got, null);
        if (r === 0) break;
        got += r;
      }
      if (got < buf.length) buf.fill(0, got);
      left -= buf.length;
      yield buf;
    }
  } finally {
    fs.closeSync(fd);
  }
  const pad = padding(size);
  if (pad) yield Buffer.alloc(pad);
}

function sortedNames(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

function* walkUpper(dir: string, rel: string, em: Emitter): Generator<Buffer> {
  for (const name of sortedNames(path.join(dir, rel))) {
    const relName = rel ? `${rel}/${name}` : name;
    const host = path.join(dir, relName);
    const st = fs.lstatSync(host, { bigint: true });
    if ((Number(st.mode) & S_IFMT) === 0o020000 && st.rdev === 0n) {
      yield* em.whiteout(rel, name);
      continue;
    }
    const m = readMeta(host, '');
    yield* em.entry(relName, host, m);
    if (m.type === 'dir') {
      if (em.isOpaque(host)) yield* em.opaque(relName);
      yield* walkUpper(dir, relName, em);
    }
  }
}

function metaEqual(a: Meta, b: Meta): boolean {
  if (a.type !== b.type) return false;
  const x = a.st;
  const y = b.st;
  if (x.mode !== y.mode || x.uid !== y.uid || x.gid !== y.gid) return false;
  if (a.type !== 'dir' && x.mtimeNs !== y.mtimeNs) return false;
  if (a.type === 'file' && x.size !== y.size) return false;
  if ((a.type === 'chardev' || a.type === 'blockdev') && x.rdev !== y.rdev) return false;
  // One side's xattrs could not be read: they may differ. (Both unreadable: a filesystem without xattrs.)
  if (Boolean(a.xattrsUnknown) !== Boolean(b.xattrsUnknown)) return false;
  if (a.xattrs.size !== b.xattrs.size) return false;
  for (const [k, v] of a.xattrs) {
    const w = b.xattrs.get(k);
    if (!w || !w.equals(v)) return false;
  }
  return true;
}

function sameContent(a: string, b: string): boolean {
  const fa = fs.openSync(a, 'r');
  const fb = fs.openSync(b, 'r');
  try {
    const ba = Buffer.allocUnsafe(CHUNK);
    const bb = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      const ra = fs.readSync(fa, ba, 0, CHUNK, null);
      const rb = fs.readSync(fb, bb, 0, CHUNK, null);
      if (ra !== rb) return false;
      if (ra === 0) return true;
      if (!ba.subarray(0, ra).equals(bb.subarray(0, rb))) return false;
    }
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

function* walkAll(dir: string, rel: string, em: Emitter): Generator<Buffer> {
  for (const name of sortedNames(path.join(dir, rel))) {
    const relName = rel ? `${rel}/${name}` : name;
    const host = path.join(dir, relName);
    const m = readMeta(host, '');
    yield* em.entry(relName, host, m);
    if (m.type === 'dir') yield* walkAll(dir, relName, em);
  }
}

function* walkPair(newDir: string, oldDir: string, rel: string, em: Emitter): Generator<Buffer> {
  const newNames = sortedNames(path.join(newDir, rel));
  const oldNames = new Set(sortedNames(path.join(oldDir, rel)));
  const newSet = new Set(newNames);
  // Deletions first: applying a whiteout after a same-named new entry would be wrong in delete form.
  for (const name of [...oldNames].sort()) if (!newSet.has(name)) yield* em.whiteout(rel, name);
  for (const name of newNames) {
    const relName = rel ? `${rel}/${name}` : name;
    const nh = path.join(newDir, relName);
    const m = readMeta(nh, '');
    if (!oldNames.has(name)) {
      yield* em.entry(relName, nh, m);
      if (m.type === 'dir') yield* walkAll(newDir, relName, em);
      continue;
    }
    const oh = path.join(oldDir, relName);
    const o = readMeta(oh, '');
    if (m.type === 'dir' && o.type === 'dir') {
      if (!metaEqual(m, o)) yield* em.entry(relName, nh, m);
      yield* walkPair(newDir, oldDir, relName, em);
      continue;
    }
    let same = metaEqual(m, o);
    if (same && m.type === 'symlink') same = fs.readlinkSync(nh) === fs.readlinkSync(oh);
    // Equal metadata with a whole-second mtime may hide a rewrite within the same second: compare bytes.
    if (same && m.type === 'file' && m.st.mtimeNs % 1_000_000_000n === 0n) same = sameContent(nh, oh);
    if (same && m.type === 'file' && m.st.ino !== o.st.ino && m.st.dev === o.st.dev) same = sameContent(nh, oh);
    if (same) continue;
    if (m.type === 'dir') {
      // A non-directory became a directory: the new one must hide nothing below, so mark it opaque.
      yield* em.entry(relName, nh, m);
      yield* em.opaque(relName);
      yield* walkAll(newDir, relName, em);
    } else {
      yield* em.entry(relName, nh, m);
    }
  }
}

/** The diff as a stream of uncompressed tar bytes. */
export function diffTarStream(src: DiffSource): { stream: Readable; entries: () => number } {
  const em = new Emitter(src.kind === 'upper' ? (src.overlayPrefix ?? 'trusted.overlay.') : 'trusted.overlay.');
  function* all(): Generator<Buffer> {
    if (src.kind === 'upper') {
      // Read for its check alone: an upper whose root carries overlay's redirect or metacopy cannot be diffed.
      readMeta(src.dir, '');
      if (em.isOpaque(src.dir)) yield* em.opaque('');
      yield* walkUpper(src.dir, '', em);
    } else if (src.oldDir === null) {
      yield* walkAll(src.newDir, '', em);
    } else {
      yield* walkPair(src.newDir, src.oldDir, '', em);
    }
    yield endOfArchive();
  }
  const gen = all();
  const stream = new Readable({
    highWaterMark: 4 * CHUNK,
    read() {
      let pushed = 0;
      try {
        while (pushed < CHUNK) {
          const r = gen.next();
          if (r.done) {
            this.push(null);
            return;
          }
          pushed += r.value.length;
          if (!this.push(r.value)) return;
        }
      } catch (e) {
        this.destroy(e as Error);
      }
    },
  });
  return { stream, entries: () => em.entries };
}

class Hasher extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

export type DiffCompression = 'gzip' | 'zstd' | 'none';

/** Writes the diff to `output` (a path: file created 0600, or an existing FIFO), compressed as asked. */
export async function writeDiff(src: DiffSource, output: string, compression: DiffCompression): Promise<DiffResult> {
  const t0 = performance.now();
  const { stream, entries } = diffTarStream(src);
  const raw = new Hasher();
  const out = new Hasher();
  const stages: NodeJS.ReadWriteStream[] = [raw];
  if (compression === 'gzip') stages.push(zlib.createGzip({ level: 6, chunkSize: 256 << 10 }));
  else if (compression === 'zstd') {
    const { CompressStream } = require('zstd-napi') as typeof import('zstd-napi');
    stages.push(new CompressStream({ compressionLevel: 3 }));
  }
  stages.push(out);
  await pipeline([stream, ...stages, fs.createWriteStream(output, { mode: 0o600 })]);
  return {
    diffId: `sha256:${raw.hash.digest('hex')}`,
    digest: `sha256:${out.hash.digest('hex')}`,
    size: out.bytes,
    entries: entries(),
    durationMs: performance.now() - t0,
  };
}
