/**
 * Snapshot a directory tree into a plain, comparable structure and diff two of them with readable output.
 * Tests use it to say "this mounted snapshot holds exactly that tree" without caring how a driver stores it:
 * sizes of directories, inode numbers and timestamps differ between filesystems, so they are left out, while
 * what a container sees (type, mode, owner, content, link targets, xattrs, hardlink groups) is kept.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../../native/index';

export type EntryType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';

export interface Entry {
  type: EntryType;
  /** Permission bits including setuid/setgid/sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Files only. */
  size?: number;
  /** sha256 of a file's content. */
  hash?: string;
  /** Symlinks only. */
  target?: string;
  /** Devices only: "major:minor". */
  rdev?: string;
  /** name → hex value; overlay's own private xattrs are left out (they are storage, not content). */
  xattrs: Record<string, string>;
  /** For a file with other names in the tree: the smallest path of its hardlink group (its own path included). */
  linkGroup?: string;
}

/** Relative path ('' is the root, 'a/b' below it) → entry. */
export type Tree = Map<string, Entry>;

export interface TreeOptions {
  /** Xattr name prefixes to leave out, on top of overlay's private ones. */
  ignoreXattrPrefixes?: string[];
  /** Relative paths (and everything below them) to leave out, e.g. 'lost+found'. */
  ignorePaths?: string[];
}

// overlayfs stores whiteouts/opaque markers/redirects in these; a merged view hides them, a raw layer shows them.
const OVERLAY_PRIVATE = ['trusted.overlay.', 'user.overlay.'];

function entryType(st: fs.Stats): EntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}

function readXattrs(p: string, ignore: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  let names: string[];
  try {
    names = native().llistxattr(p);
  } catch (e) {
    // Filesystems without xattr support have none to compare.
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTSUP' || code === 'EOPNOTSUPP') return out;
    throw e;
  }
  for (const name of names.sort()) {
    if (ignore.some((prefix) => name.startsWith(prefix))) continue;
    const v = native().lgetxattr(p, name);
    if (v !== null) out[name] = v.toString('hex');
  }
  return out;
}

function hashFile(p: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/**
 * Reads the tree below dir. Synchronous on purpose: trees in tests are small and a consistent walk is simpler
 * to reason about than interleaved promises.
 */
export function snapshotTree(dir: string, opts: TreeOptions = {}): Tree {
  const ignoreX = [...OVERLAY_PRIVATE, ...(opts.ignoreXattrPrefixes ?? [])];
  const ignoreP = new Set(opts.ignorePaths ?? []);
  const tree: Tree = new Map();
  const inodes = new Map<string, string[]>();

  const visit = (rel: string): void => {
    const abs = rel === '' ? dir : path.join(dir, rel);
    const st = fs.lstatSync(abs, { bigint: true });
    const type = entryType(st as unknown as fs.Stats);
    const e: Entry = {
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      xattrs: readXattrs(abs, ignoreX),
    };
    if (type === 'file') {
      e.size = Number(st.size);
      e.hash = hashFile(abs);
      if (st.nlink > 1n) {
        const k = `${st.dev}:${st.ino}`;
        const group = inodes.get(k) ?? [];
        group.push(rel);
        inodes.set(k, group);
      }
    } else if (type === 'symlink') {
      e.target = fs.readlinkSync(abs);
    } else if (type === 'char' || type === 'block') {
      // Linux's dev_t encoding (glibc's gnu_dev_major/minor).
      const rdev = st.rdev;
      const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
      const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
      e.rdev = `${major}:${minor}`;
    }
    tree.set(rel, e);
    if (type === 'dir') {
      for (const name of fs.readdirSync(abs).sort()) {
        const child = rel === '' ? name : `${rel}/${name}`;
        if (!ignoreP.has(child)) visit(child);
      }
    }
  };
  visit('');

  for (const group of inodes.values()) {
    if (group.length < 2) continue;
    const first = [...group].sort()[0];
    for (const p of group) tree.get(p)!.linkGroup = first;
  }
  return tree;
}

function describe(e: Entry): string {
  const bits = [`${e.type} ${e.mode.toString(8).padStart(4, '0')} ${e.uid}:${e.gid}`];
  if (e.size !== undefined) bits.push(`${e.size}B sha256:${e.hash?.slice(0, 12)}`);
  if (e.target !== undefined) bits.push(`-> ${e.target}`);
  if (e.rdev !== undefined) bits.push(`dev ${e.rdev}`);
  if (e.linkGroup !== undefined) bits.push(`link=${e.linkGroup}`);
  const xs = Object.keys(e.xattrs);
  if (xs.length) bits.push(`xattrs[${xs.join(',')}]`);
  return bits.join(' ');
}

function show(rel: string): string {
  return rel === '' ? '/' : `/${rel}`;
}

/** Differences between two trees, one readable line each; empty when they are equal. */
export function diffTrees(actual: Tree, expected: Tree): string[] {
  const out: string[] = [];
  const paths = [...new Set([...actual.keys(), ...expected.keys()])].sort();
  for (const p of paths) {
    const a = actual.get(p);
    const x = expected.get(p);
    if (!a) {
      out.push(`- ${show(p)} missing (expected ${describe(x!)})`);
      continue;
    }
    if (!x) {
      out.push(`+ ${show(p)} unexpected (${describe(a)})`);
      continue;
    }
    const d: string[] = [];
    if (a.type !== x.type) d.push(`type ${a.type} != ${x.type}`);
    if (a.mode !== x.mode) d.push(`mode ${a.mode.toString(8)} != ${x.mode.toString(8)}`);
    if (a.uid !== x.uid || a.gid !== x.gid) d.push(`owner ${a.uid}:${a.gid} != ${x.uid}:${x.gid}`);
    if (a.size !== x.size) d.push(`size ${a.size} != ${x.size}`);
    else if (a.hash !== x.hash) d.push(`content differs`);
    if (a.target !== x.target) d.push(`symlink target ${a.target} != ${x.target}`);
    if (a.rdev !== x.rdev) d.push(`device ${a.rdev} != ${x.rdev}`);
    if (a.linkGroup !== x.linkGroup) d.push(`hardlink group ${a.linkGroup ?? 'none'} != ${x.linkGroup ?? 'none'}`);
    const xa = JSON.stringify(a.xattrs);
    const xx = JSON.stringify(x.xattrs);
    if (xa !== xx) d.push(`xattrs ${xa} != ${xx}`);
    if (d.length) out.push(`~ ${show(p)}: ${d.join('; ')}`);
  }
  return out;
}

/** Throws with every difference listed (capped) when the trees differ. */
export function assertTreesEqual(actual: Tree, expected: Tree, what = 'tree'): void {
  const d = diffTrees(actual, expected);
  if (d.length === 0) return;
  const shown = d.slice(0, 40);
  if (d.length > shown.length) shown.push(`... and ${d.length - shown.length} more`);
  throw new Error(`${what} differs from the expected tree (actual vs expected):\n  ${shown.join('\n  ')}`);
}

/** A JSON-friendly form, for keeping an expected tree beside a test's state. */
export function treeToJSON(t: Tree): Array<[string, Entry]> {
  return [...t.entries()];
}

export function treeFromJSON(j: Array<[string, Entry]>): Tree {
  return new Map(j);
}
