/**
 * Builds a small multi-layer OCI image archive inside a test, with no registry and no docker: the layers are tar
 * streams written here (ustar + PAX), so the test controls every header (owners, modes, xattrs, whiteouts) no matter
 * who runs it. The archive is an OCI layout (oci-layout, index.json, blobs/sha256/…) in a tar, as
 * `ctr image import` takes it. The image also carries a model of the rootfs it must unpack to, so an e2e test can
 * compare a mounted rootfs with it file by file.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { native } from '../../native/index';
import { diffTrees, snapshotTree, type Entry, type Tree } from './tree';

// ---------------------------------------------------------------------------------------------------------------
// A minimal tar writer. Only what the test images need: regular files, dirs, symlinks, hardlinks, PAX records for
// xattrs and long names.

export interface TarEntry {
  /** Path inside the archive, relative, no leading slash; dirs without a trailing slash (added here). */
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'hardlink';
  /** Permission bits including setuid/setgid/sticky. */
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  data?: Buffer;
  /** Symlink target, or the archive path a hardlink points to. */
  linkname?: string;
  /** xattrs, written as PAX `SCHILY.xattr.<name>` records (what containerd's and GNU tar's readers take). */
  xattrs?: Record<string, string>;
}

const TYPEFLAG: Record<TarEntry['type'], string> = { file: '0', hardlink: '1', symlink: '2', dir: '5' };

function octal(n: number, width: number): string {
  // width-1 octal digits and a NUL, as ustar readers expect.
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

function ustarHeader(name: string, typeflag: string, size: number, e: Pick<TarEntry, 'mode' | 'uid' | 'gid' | 'mtime'>, linkname = ''): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(e.mode & 0o7777, 8), 100, 'ascii');
  h.write(octal(e.uid, 8), 108, 'ascii');
  h.write(octal(e.gid, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(e.mtime, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii'); // checksum is computed with its own field as spaces
  h.write(typeflag, 156, 'ascii');
  h.write(linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write(octal(0, 8), 329, 'ascii');
  h.write(octal(0, 8), 337, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return h;
}

function paxRecord(key: string, value: string): string {
  // The length prefix counts itself, so find the fixed point.
  const body = ` ${key}=${value}\n`;
  const bodyLen = Buffer.byteLength(body);
  let len = bodyLen + String(bodyLen).length;
  if (String(len).length !== String(len - bodyLen).length) len = bodyLen + String(len).length;
  return `${len}${body}`;
}

function padded(data: Buffer): Buffer[] {
  const rest = data.length % 512;
  return rest ? [data, Buffer.alloc(512 - rest)] : [data];
}

export function writeTar(entries: readonly TarEntry[]): Buffer {
  const out: Buffer[] = [];
  for (const e of entries) {
    const name = e.type === 'dir' ? `${e.name.replace(/\/$/, '')}/` : e.name;
    const linkname = e.linkname ?? '';
    const pax: string[] = [];
    if (Buffer.byteLength(name) > 100) pax.push(paxRecord('path', name));
    if (Buffer.byteLength(linkname) > 100) pax.push(paxRecord('linkpath', linkname));
    for (const [k, v] of Object.entries(e.xattrs ?? {})) pax.push(paxRecord(`SCHILY.xattr.${k}`, v));
    if (pax.length) {
      const body = Buffer.from(pax.join(''), 'utf8');
      out.push(ustarHeader(`PaxHeaders/${path.basename(name)}`.slice(0, 99), 'x', body.length, e), ...padded(body));
    }
    const data = e.type === 'file' ? (e.data ?? Buffer.alloc(0)) : Buffer.alloc(0);
    out.push(ustarHeader(name.slice(0, 100), TYPEFLAG[e.type], data.length, e, linkname.slice(0, 100)));
    if (data.length) out.push(...padded(data));
  }
  out.push(Buffer.alloc(1024)); // two zero blocks end the archive
  return Buffer.concat(out);
}

// ---------------------------------------------------------------------------------------------------------------
// Layers, described as what a test means (files, whiteouts, opaque dirs), and the rootfs they must produce.

export type LayerOp =
  | { op: 'dir'; path: string; mode?: number; uid?: number; gid?: number }
  | { op: 'file'; path: string; content: string | Buffer; mode?: number; uid?: number; gid?: number; xattrs?: Record<string, string> }
  | { op: 'symlink'; path: string; target: string; uid?: number; gid?: number }
  | { op: 'hardlink'; path: string; target: string }
  /** Deletes a file or a whole dir of the layers below (`.wh.<name>`). */
  | { op: 'whiteout'; path: string }
  /** Hides everything the layers below have in this dir (`<dir>/.wh..wh..opq`); the dir itself stays. */
  | { op: 'opaque'; path: string };

export interface LayerSpec {
  ops: LayerOp[];
  compression: 'gzip' | 'none';
}

/** What one path of the unpacked rootfs must be. */
export interface ExpectedEntry {
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  uid: number;
  gid: number;
  /** sha256 of a regular file's content. */
  sha256?: string;
  size?: number;
  target?: string;
  xattrs: Record<string, string>;
  /** Paths that must share this file's inode (hardlinks). */
  linkGroup?: string;
  mtime?: number;
}

export type ExpectedTree = Map<string, ExpectedEntry>;

const MTIME = 1_700_000_000;

function sha256(data: Buffer): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

function layerEntries(ops: readonly LayerOp[]): TarEntry[] {
  const entries: TarEntry[] = [];
  const base = { uid: 0, gid: 0, mtime: MTIME };
  for (const o of ops) {
    switch (o.op) {
      case 'dir':
        entries.push({ ...base, name: o.path, type: 'dir', mode: o.mode ?? 0o755, uid: o.uid ?? 0, gid: o.gid ?? 0 });
        break;
      case 'file':
        entries.push({
          ...base,
          name: o.path,
          type: 'file',
          mode: o.mode ?? 0o644,
          uid: o.uid ?? 0,
          gid: o.gid ?? 0,
          data: Buffer.isBuffer(o.content) ? o.content : Buffer.from(o.content),
          xattrs: o.xattrs,
        });
        break;
      case 'symlink':
        entries.push({ ...base, name: o.path, type: 'symlink', mode: 0o777, uid: o.uid ?? 0, gid: o.gid ?? 0, linkname: o.target });
        break;
      case 'hardlink':
        entries.push({ ...base, name: o.path, type: 'hardlink', mode: 0o644, linkname: o.target });
        break;
      case 'whiteout':
        entries.push({ ...base, name: path.posix.join(path.posix.dirname(o.path), `.wh.${path.posix.basename(o.path)}`), type: 'file', mode: 0o644 });
        break;
      case 'opaque':
        entries.push({ ...base, name: path.posix.join(o.path, '.wh..wh..opq'), type: 'file', mode: 0o644 });
        break;
    }
  }
  return entries;
}

/** Applies layers to a model of the rootfs, with OCI's whiteout rules: opaque and whiteouts hide lower layers only. */
export function expectedTree(layers: readonly LayerSpec[]): ExpectedTree {
  const tree: ExpectedTree = new Map();
  tree.set('', { type: 'dir', mode: 0o755, uid: 0, gid: 0, xattrs: {} });
  const dropUnder = (p: string, keepSelf: boolean): void => {
    for (const k of [...tree.keys()]) if (k.startsWith(`${p}/`) || (!keepSelf && k === p)) tree.delete(k);
  };
  for (const layer of layers) {
    for (const o of layer.ops) if (o.op === 'opaque') dropUnder(o.path, true);
    for (const o of layer.ops) if (o.op === 'whiteout') dropUnder(o.path, false);
    for (const o of layer.ops) {
      switch (o.op) {
        case 'dir': {
          // An existing dir keeps its children; a non-dir is replaced.
          const prev = tree.get(o.path);
          if (prev && prev.type !== 'dir') tree.delete(o.path);
          tree.set(o.path, { type: 'dir', mode: o.mode ?? 0o755, uid: o.uid ?? 0, gid: o.gid ?? 0, xattrs: {} });
          break;
        }
        case 'file': {
          dropUnder(o.path, false);
          const data = Buffer.isBuffer(o.content) ? o.content : Buffer.from(o.content);
          tree.set(o.path, {
            type: 'file',
            mode: o.mode ?? 0o644,
            uid: o.uid ?? 0,
            gid: o.gid ?? 0,
            sha256: sha256(data),
            size: data.length,
            xattrs: { ...(o.xattrs ?? {}) },
            mtime: MTIME,
          });
          break;
        }
        case 'symlink':
          dropUnder(o.path, false);
          tree.set(o.path, { type: 'symlink', mode: 0o777, uid: o.uid ?? 0, gid: o.gid ?? 0, target: o.target, xattrs: {} });
          break;
        case 'hardlink': {
          const target = tree.get(o.target);
          if (!target || target.type !== 'file') throw new Error(`image model: hardlink ${o.path} to missing file ${o.target}`);
          target.linkGroup ??= o.target;
          tree.set(o.path, { ...target, xattrs: { ...target.xattrs } });
          break;
        }
        default:
          break;
      }
    }
  }
  return tree;
}

// ---------------------------------------------------------------------------------------------------------------
// The standard e2e image.

export const E2E_IMAGE_NAME = 'docker.io/strata/e2e:latest';

/** The content of the files the container commands print, so tests can compare `ctr run` output with them. */
export const E2E_FILES = {
  hello: 'hello from layer 3\n',
  keep: 'kept across layers\n',
  opaqueNew: 'new in the opaque dir\n',
  recreated: 'inside the recreated dir\n',
  owned: 'owned by uid 1000\n',
  xattrValue: 'strata-e2e',
} as const;

/**
 * Three layers over a static busybox: file and dir whiteouts, an opaque dir, a dir deleted and recreated, relative
 * and absolute symlinks, a hardlink, a user.* xattr, setuid/setgid/sticky bits, uid/gid 1000 files and dirs.
 */
export function e2eLayers(busybox = '/bin/busybox'): LayerSpec[] {
  const applets = ['sh', 'cat', 'ls', 'stat', 'echo', 'id', 'readlink', 'test', 'sync'];
  const base: LayerOp[] = [
    { op: 'dir', path: 'bin' },
    { op: 'file', path: 'bin/busybox', content: fs.readFileSync(busybox), mode: 0o755 },
    ...applets.map((a): LayerOp => ({ op: 'symlink', path: `bin/${a}`, target: 'busybox' })),
    { op: 'dir', path: 'etc' },
    { op: 'file', path: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n' },
    { op: 'file', path: 'etc/group', content: 'root:x:0:\nuser:x:1000:\n' },
    { op: 'file', path: 'etc/hello.txt', content: 'hello from layer 1\n' },
    { op: 'dir', path: 'tmp', mode: 0o1777 },
    { op: 'dir', path: 'proc', mode: 0o555 },
    { op: 'dir', path: 'sys', mode: 0o555 },
    { op: 'dir', path: 'dev' },
    { op: 'dir', path: 'home' },
    { op: 'dir', path: 'home/user', mode: 0o750, uid: 1000, gid: 1000 },
    { op: 'file', path: 'home/user/owned.txt', content: E2E_FILES.owned, mode: 0o600, uid: 1000, gid: 1000 },
    { op: 'dir', path: 'data' },
    { op: 'file', path: 'data/keep.txt', content: E2E_FILES.keep },
    { op: 'file', path: 'data/to-delete.txt', content: 'whited out in layer 2\n' },
    { op: 'dir', path: 'data/dir-to-delete' },
    { op: 'file', path: 'data/dir-to-delete/a', content: 'a\n' },
    { op: 'dir', path: 'data/dir-to-delete/sub' },
    { op: 'file', path: 'data/dir-to-delete/sub/b', content: 'b\n' },
    { op: 'dir', path: 'data/opaque', mode: 0o750 },
    { op: 'file', path: 'data/opaque/old1', content: 'hidden by the opaque marker\n' },
    { op: 'dir', path: 'data/opaque/olddir' },
    { op: 'file', path: 'data/opaque/olddir/x', content: 'x\n' },
    { op: 'file', path: 'data/hardlink-src', content: 'one inode, two names\n' },
    { op: 'hardlink', path: 'data/hardlink-dst', target: 'data/hardlink-src' },
    { op: 'symlink', path: 'data/rel-link', target: 'keep.txt' },
    { op: 'symlink', path: 'data/abs-link', target: '/etc/hello.txt' },
    { op: 'symlink', path: 'data/dangling-link', target: '/nonexistent/path' },
  ];
  const second: LayerOp[] = [
    { op: 'whiteout', path: 'data/to-delete.txt' },
    { op: 'whiteout', path: 'data/dir-to-delete' },
    { op: 'dir', path: 'data/opaque', mode: 0o750 },
    { op: 'opaque', path: 'data/opaque' },
    { op: 'file', path: 'data/opaque/new1', content: E2E_FILES.opaqueNew },
    { op: 'file', path: 'etc/hello.txt', content: 'hello from layer 2\n' },
    { op: 'file', path: 'data/setuid', content: '#!/bin/sh\necho setuid\n', mode: 0o4755 },
    { op: 'file', path: 'data/setgid', content: 'setgid\n', mode: 0o2755 },
    { op: 'dir', path: 'data/sticky', mode: 0o1777 },
    { op: 'file', path: 'data/xattr-file', content: 'has an xattr\n', xattrs: { 'user.strata': E2E_FILES.xattrValue } },
    { op: 'dir', path: 'data/uid1000', mode: 0o700, uid: 1000, gid: 1000 },
    { op: 'file', path: 'data/uid1000/file', content: 'mine\n', mode: 0o640, uid: 1000, gid: 1000 },
    { op: 'symlink', path: 'data/uid1000/link', target: 'file', uid: 1000, gid: 1000 },
  ];
  const third: LayerOp[] = [
    { op: 'dir', path: 'data/dir-to-delete', mode: 0o711 },
    { op: 'file', path: 'data/dir-to-delete/c', content: E2E_FILES.recreated },
    { op: 'file', path: 'etc/hello.txt', content: E2E_FILES.hello },
    // A file replacing a lower symlink of the same name.
    { op: 'file', path: 'data/rel-link', content: 'a file where a symlink was\n' },
  ];
  return [
    { ops: base, compression: 'gzip' },
    { ops: second, compression: 'none' },
    { ops: third, compression: 'gzip' },
  ];
}

export interface BuiltImage {
  /** Path of the OCI archive (a tar) for `ctr image import`. */
  archive: string;
  name: string;
  manifestDigest: string;
  configDigest: string;
  /** Uncompressed layer digests, bottom first. */
  diffIds: string[];
  /** containerd's chain IDs, bottom first: the names of the committed snapshots an unpack creates. */
  chainIds: string[];
  expected: ExpectedTree;
}

interface Blob {
  digest: string;
  size: number;
  data: Buffer;
}

function blob(data: Buffer): Blob {
  return { digest: `sha256:${sha256(data)}`, size: data.length, data };
}

/** chainID(L0) = diffID(L0); chainID(Ln) = sha256(chainID(Ln-1) + " " + diffID(Ln)), per the OCI image spec. */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    out.push(out.length === 0 ? d : `sha256:${sha256(Buffer.from(`${out[out.length - 1]} ${d}`))}`);
  }
  return out;
}

/** Writes the image archive into `dir` and returns where it is and what it must unpack to. */
export function buildImage(dir: string, layers: readonly LayerSpec[] = e2eLayers(), name = E2E_IMAGE_NAME): BuiltImage {
  const blobs: Blob[] = [];
  const diffIds: string[] = [];
  const layerDescs: { mediaType: string; digest: string; size: number }[] = [];
  for (const l of layers) {
    const tar = writeTar(layerEntries(l.ops));
    diffIds.push(`sha256:${sha256(tar)}`);
    const b = blob(l.compression === 'gzip' ? zlib.gzipSync(tar) : tar);
    blobs.push(b);
    layerDescs.push({
      mediaType: l.compression === 'gzip' ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar',
      digest: b.digest,
      size: b.size,
    });
  }
  const config = blob(
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        created: new Date(MTIME * 1000).toISOString(),
        config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'], WorkingDir: '/' },
        rootfs: { type: 'layers', diff_ids: diffIds },
        history: layers.map((_, i) => ({ created: new Date(MTIME * 1000).toISOString(), created_by: `strata e2e layer ${i + 1}` })),
      }),
    ),
  );
  blobs.push(config);
  const manifest = blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
        layers: layerDescs,
      }),
    ),
  );
  blobs.push(manifest);
  const tag = name.slice(name.lastIndexOf(':') + 1);
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: manifest.digest,
        size: manifest.size,
        platform: { architecture: 'amd64', os: 'linux' },
        // containerd's importer takes the full name from its own annotation before the OCI ref name.
        annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': tag },
      },
    ],
  };
  const now = { mode: 0o644, uid: 0, gid: 0, mtime: MTIME };
  const entries: TarEntry[] = [
    { ...now, name: 'oci-layout', type: 'file', data: Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })) },
    { ...now, name: 'index.json', type: 'file', data: Buffer.from(JSON.stringify(index)) },
    { ...now, name: 'blobs', type: 'dir', mode: 0o755 },
    { ...now, name: 'blobs/sha256', type: 'dir', mode: 0o755 },
    ...blobs.map((b): TarEntry => ({ ...now, name: `blobs/sha256/${b.digest.slice('sha256:'.length)}`, type: 'file', data: b.data })),
  ];
  fs.mkdirSync(dir, { recursive: true });
  const archive = path.join(dir, 'image.oci.tar');
  fs.writeFileSync(archive, writeTar(entries));
  return { archive, name, manifestDigest: manifest.digest, configDigest: config.digest, diffIds, chainIds: chainIds(diffIds), expected: expectedTree(layers) };
}

// ---------------------------------------------------------------------------------------------------------------
// Comparing a mounted rootfs with the model, through the shared tree helper (type, mode, owner, content, link
// targets, xattrs, hardlink groups), plus regular files' mtimes, which an unpack must keep.

/** The model in tree.ts's form (xattr values hex, hardlink groups named by their smallest path). */
export function expectedAsTree(expected: ExpectedTree): Tree {
  const groups = new Map<string, string[]>();
  for (const [p, e] of expected) if (e.linkGroup) groups.set(e.linkGroup, [...(groups.get(e.linkGroup) ?? []), p]);
  const t: Tree = new Map();
  for (const [p, e] of expected) {
    const xattrs: Record<string, string> = {};
    for (const k of Object.keys(e.xattrs).sort()) xattrs[k] = Buffer.from(e.xattrs[k]).toString('hex');
    const entry: Entry = { type: e.type, mode: e.type === 'symlink' ? 0o777 : e.mode, uid: e.uid, gid: e.gid, xattrs };
    if (e.type === 'file') {
      entry.size = e.size;
      entry.hash = e.sha256;
    }
    if (e.type === 'symlink') entry.target = e.target;
    if (e.linkGroup) entry.linkGroup = [...(groups.get(e.linkGroup) ?? [p])].sort()[0];
    t.set(p, entry);
  }
  return t;
}

/** False on a filesystem that refuses xattr calls altogether (zfs-fuse once FUSE has marked them unsupported). */
export function xattrsSupported(dir: string): boolean {
  try {
    native().llistxattr(dir);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EOPNOTSUPP' || code === 'ENOTSUP') return false;
    throw e;
  }
}

/** tree.ts's walk minus xattrs, for a filesystem where listing them fails (snapshotTree would throw there). */
function treeWithoutXattrs(root: string, ignore: readonly string[]): Tree {
  const t: Tree = new Map();
  const links = new Map<number, string[]>();
  const visit = (rel: string): void => {
    const abs = rel === '' ? root : path.join(root, rel);
    const st = fs.lstatSync(abs);
    const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'char';
    const e: Entry = { type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, xattrs: {} };
    if (type === 'file') {
      const data = fs.readFileSync(abs);
      e.size = data.length;
      e.hash = sha256(data);
      if (st.nlink > 1) links.set(st.ino, [...(links.get(st.ino) ?? []), rel]);
    }
    if (type === 'symlink') e.target = fs.readlinkSync(abs);
    t.set(rel, e);
    if (type === 'dir') {
      for (const name of fs.readdirSync(abs).sort()) {
        const child = rel === '' ? name : `${rel}/${name}`;
        if (!ignore.includes(child)) visit(child);
      }
    }
  };
  visit('');
  for (const group of links.values()) {
    if (group.length < 2) continue;
    const first = [...group].sort()[0];
    for (const p of group) t.get(p)!.linkGroup = first;
  }
  return t;
}

/**
 * Compares a rootfs on disk with the model. Returns one line per difference (empty when equal), so a failing test
 * shows every wrong path at once. `ignore` lists paths a runtime may add (e.g. mount points it created).
 */
export function compareRootfs(root: string, expected: ExpectedTree, ignore: readonly string[] = []): string[] {
  const withXattrs = xattrsSupported(root);
  const actual = withXattrs ? snapshotTree(root, { ignorePaths: [...ignore] }) : treeWithoutXattrs(root, ignore);
  const want = expectedAsTree(expected);
  if (!withXattrs) for (const e of want.values()) e.xattrs = {};
  for (const p of ignore) for (const k of [...want.keys()]) if (k === p || k.startsWith(`${p}/`)) want.delete(k);
  // The root dir's mode and owner belong to the snapshotter (0755 root), not to the image.
  const rootEntry = actual.get('');
  if (rootEntry) want.set('', { ...rootEntry, xattrs: want.get('')?.xattrs ?? {} });
  const diffs = diffTrees(actual, want);
  for (const [p, e] of expected) {
    if (e.type !== 'file' || e.mtime === undefined || !actual.has(p)) continue;
    const got = Math.floor(fs.lstatSync(path.join(root, p)).mtimeMs / 1000);
    if (got !== e.mtime) diffs.push(`~ /${p}: mtime ${got} != ${e.mtime}`);
  }
  return diffs;
}
