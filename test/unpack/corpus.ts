/**
 * The hostile-archive corpus: each case is an archive (built here, byte by byte), the limits it runs under, and
 * what must come of it for each whiteout form: a refusal of a given kind, or an exact set of paths. The runner
 * (hostile.test.ts) also checks that nothing outside the target changed.
 *
 * Every case runs against the same starting point, BASE: in delete form the target already holds it (a
 * snapshot copy of the lower layers), in overlay form it is the lower layer and the target is an empty upper.
 * `@OUT@` in names and link targets is replaced with the absolute path of a sentinel directory outside the
 * target, so absolute-path escapes aim at something real.
 */
import type { UnpackLimits } from '../../src/unpack/engine';
import type { UnpackErrorKind } from '../../src/unpack/errors';
import { TarBuilder, corruptByte, gzip, sha256, zstd } from './builder';
import { endOfArchive, entryHeader, metaMember, paxRecords, rawHeader, setChecksum } from '../../src/unpack/tarwrite';

export type Form = 'overlay' | 'delete';

export type Spec =
  | { type: 'file'; content?: string; mode?: number; uid?: number; gid?: number; sameInodeAs?: string; xattrs?: Record<string, string>; mtime?: number; mtimeNsec?: number }
  | { type: 'dir'; mode?: number; uid?: number; opaque?: boolean; xattrs?: Record<string, string>; mtime?: number }
  | { type: 'symlink'; target: string; mtime?: number; uid?: number }
  | { type: 'chardev' | 'blockdev'; major: number; minor: number; mode?: number }
  | { type: 'fifo'; mode?: number }
  | { type: 'absent' }
  /** overlay: a 0/0 character device; delete: absent. */
  | { type: 'whiteout' };

export type Expect = { refuse: UnpackErrorKind | UnpackErrorKind[] } | { tree: Record<string, Spec> };

export interface Case {
  name: string;
  build(out: string): Buffer;
  expect: Expect | ((form: Form) => Expect);
  limits?: Partial<UnpackLimits>;
  diffId?: (archive: Buffer) => string;
  /** Only meaningful in one form. */
  only?: Form;
}

/** The starting content (lower layer / pre-populated target). Paths → [type, content or target, mode]. */
export const BASE: Array<{ path: string; type: 'file' | 'dir' | 'symlink'; content?: string; mode?: number; uid?: number; xattr?: [string, string] }> = [
  { path: 'etc', type: 'dir' },
  { path: 'etc/passwd', type: 'file', content: 'root:x:0:0::/root:/bin/sh\n' },
  { path: 'etc/hosts', type: 'file', content: '127.0.0.1 localhost\n' },
  { path: 'd', type: 'dir' },
  { path: 'd/old', type: 'file', content: 'old' },
  { path: 'd/sub', type: 'dir' },
  { path: 'd/sub/deep', type: 'file', content: 'deep' },
  { path: 'lowdir', type: 'dir', mode: 0o750, uid: 1000, xattr: ['user.low', 'L'] },
  { path: 'lowfile', type: 'file', content: 'LOWER' },
];

const T = (): TarBuilder => new TarBuilder();
const refuse = (kind: UnpackErrorKind | UnpackErrorKind[]): Expect => ({ refuse: kind });
const tree = (t: Record<string, Spec>): Expect => ({ tree: t });
const file = (content?: string, more: Partial<Extract<Spec, { type: 'file' }>> = {}): Spec => ({ type: 'file', content, ...more });
const dir = (more: Partial<Extract<Spec, { type: 'dir' }>> = {}): Spec => ({ type: 'dir', ...more });
const sym = (target: string): Spec => ({ type: 'symlink', target });
const absent: Spec = { type: 'absent' };
const whiteout: Spec = { type: 'whiteout' };
/** In overlay form the upper holds only what the layer wrote: BASE paths are absent there. */
const base = (form: Form, s: Spec): Spec => (form === 'delete' ? s : absent);

function deepName(depth: number): string {
  return Array.from({ length: depth }, () => 'a').join('/');
}

function tarOfFiles(n: number, names: (i: number) => string): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < n; i++) parts.push(entryHeader({ name: names(i), type: 'file', mode: 0o644, size: 0 }));
  parts.push(endOfArchive());
  return Buffer.concat(parts);
}

/** A million headers as 100 gzip members of the same 10,000 entries: ~5 MB, never a 512 MB buffer. */
function millionEntries(): Buffer {
  const member = gzip(Buffer.concat(Array.from({ length: 10_000 }, (_, i) => entryHeader({ name: `f${i % 100}`, type: 'file', size: 0 }))));
  return Buffer.concat([...Array.from({ length: 100 }, () => member), gzip(endOfArchive())]);
}

function zeroFileTar(bytes: number): Buffer {
  return Buffer.concat([entryHeader({ name: 'zeros', type: 'file', size: bytes }), Buffer.alloc(bytes), endOfArchive()]);
}

export const CASES: Case[] = [
  // ---- symlink breakouts ---------------------------------------------------------------------------------
  { name: 'absolute symlink to outside, then a file through it', build: (o) => T().symlink('evil', o).file('evil/pwned', 'x').build(), expect: refuse('unsafe') },
  { name: 'relative up-and-out symlink, then a file through it', build: () => T().symlink('evil', '../../../../../../..').file('evil/pwned', 'x').build(), expect: (f) => tree({ evil: sym('../../../../../../..'), pwned: file('x'), 'etc/passwd': base(f, file('root:x:0:0::/root:/bin/sh\n')) }) },
  { name: 'up-and-out symlink lands on a same-named dir inside the root', build: () => T().dir('out').symlink('evil', '../../../../out').file('evil/pwned', 'x').build(), expect: tree({ 'out/pwned': file('x'), evil: sym('../../../../out') }) },
  { name: 'symlink to a dir inside, then a file through it', build: () => T().dir('real').symlink('l', 'real').file('l/f', 'F').build(), expect: tree({ 'real/f': file('F'), l: sym('real') }) },
  { name: 'symlink chain to /, then nested file', build: () => T().symlink('b', '/').symlink('a', 'b').file('a/newdir/x', 'X').build(), expect: tree({ 'newdir/x': file('X'), a: sym('b'), b: sym('/') }) },
  { name: 'symlink to /etc then write passwd through it (stays in the root)', build: () => T().symlink('e', '/etc').file('e/passwd', 'pwned').build(), expect: (f) => (f === 'delete' ? tree({ 'etc/passwd': file('pwned'), e: sym('/etc') }) : refuse('unsafe')) },
  { name: 'file replaced by symlink to outside, then file again (not followed)', build: (o) => T().file('x', '1').symlink('x', `${o}/target`).file('x', 'second').build(), expect: tree({ x: file('second') }) },
  { name: 'symlink to outside file, then a file entry of the same name', build: (o) => T().symlink('t', `${o}/target`).file('t', 'mine').build(), expect: tree({ t: file('mine') }) },
  { name: 'symlink to outside dir, then dir entry of the same name', build: (o) => T().symlink('t', o).dir('t').file('t/in', 'in').build(), expect: tree({ t: dir(), 't/in': file('in') }) },
  { name: 'symlink loop used as a parent', build: () => T().symlink('a', 'b').symlink('b', 'a').file('a/x', 'x').build(), expect: refuse(['unsafe']) },
  { name: 'symlink with an empty target', build: () => T().symlink('s', '').build(), expect: refuse('corrupt') },
  { name: 'symlink through /proc magic link', build: () => T().symlink('p', '/proc/self/root').file('p/tmp/escape', 'x').build(), expect: refuse('unsafe') },
  { name: 'dangling relative symlink as parent', build: () => T().symlink('d2', 'nowhere/deeper').file('d2/f', 'x').build(), expect: refuse('unsafe') },
  { name: 'symlink to a file inside, then a file through it as dir', build: () => T().file('f', 'F').symlink('l', 'f').file('l/x', 'x').build(), expect: refuse('unsafe') },

  // ---- hardlink breakouts --------------------------------------------------------------------------------
  { name: 'hardlink to an absolute host path', build: () => T().hardlink('h', '/etc/shadow').build(), expect: refuse('unsafe') },
  { name: 'hardlink to the outside sentinel', build: (o) => T().hardlink('h', `${o}/target`).build(), expect: refuse('unsafe') },
  { name: 'hardlink up and out', build: () => T().hardlink('h', '../../../../etc/passwd').build(), expect: refuse('unsafe') },
  { name: 'hardlink through a symlinked parent to the host', build: () => T().symlink('l', '/usr/bin').hardlink('h', 'l/env').build(), expect: refuse('unsafe') },
  { name: 'hardlink through a symlinked parent inside', build: () => T().dir('etc2').file('etc2/p', 'P').symlink('l', '/etc2').hardlink('h', 'l/p').build(), expect: tree({ h: file('P', { sameInodeAs: 'etc2/p' }) }) },
  { name: 'hardlink to a symlink (links the symlink itself)', build: () => T().symlink('s', '/etc/shadow').hardlink('h', 's').build(), expect: tree({ h: sym('/etc/shadow'), s: sym('/etc/shadow') }) },
  { name: 'hardlink before its target exists', build: () => T().hardlink('h', 'later').file('later', 'L').build(), expect: refuse('unsafe') },
  { name: 'hardlink to a directory', build: () => T().dir('dd').hardlink('h', 'dd').build(), expect: refuse('unsafe') },
  { name: 'hardlink then a file of the same name (unlinks, not writes through)', build: () => T().file('a', 'A').hardlink('b', 'a').file('b', 'B').build(), expect: tree({ a: file('A'), b: file('B') }) },
  { name: 'hardlink to symlink to outside, then file of the same name', build: (o) => T().symlink('s', `${o}/target`).hardlink('h', 's').file('h', 'mine').build(), expect: tree({ h: file('mine'), s: sym('@OUT@/target') }) },
  { name: 'hardlink to itself', build: () => T().file('self', 'S').hardlink('self', 'self').build(), expect: tree({ self: file('S') }) },
  { name: 'hardlink to the root', build: () => T().hardlink('h', '/').build(), expect: refuse('unsafe') },
  { name: 'hardlink to a lower-layer file', build: () => T().hardlink('h', 'lowfile').build(), expect: tree({ h: file('LOWER', { sameInodeAs: 'lowfile' }), lowfile: file('LOWER') }) },
  { name: 'hardlink chain', build: () => T().file('x', 'X').hardlink('y', 'x').hardlink('z', 'y').build(), expect: tree({ z: file('X', { sameInodeAs: 'x' }), y: file('X', { sameInodeAs: 'x' }) }) },

  // ---- names: .., absolute, long names, PAX ---------------------------------------------------------------
  { name: 'absolute file name is taken below the root', build: () => T().file('/abs/file', 'A').build(), expect: tree({ 'abs/file': file('A') }) },
  { name: '../ name', build: () => T().file('../escape', 'x').build(), expect: refuse('unsafe') },
  { name: 'a/../../ name', build: () => T().file('a/../../escape', 'x').build(), expect: refuse('unsafe') },
  { name: './../ name', build: () => T().file('./../x', 'x').build(), expect: refuse('unsafe') },
  { name: 'dot-dot in the middle of an otherwise inside name', build: () => T().file('d/../etc/passwd', 'x').build(), expect: refuse('unsafe') },
  { name: 'GNU long name with ..', build: () => T().gnuLong('L', '../'.repeat(40) + 'tmp/x').file('short', 'x').build(), expect: refuse('unsafe') },
  { name: 'GNU long name, absolute and long', build: (o) => T().gnuLong('L', o + '/' + 'n'.repeat(120)).file('short', 'x').build(), expect: tree({ short: absent, ['@OUTREL@/' + 'n'.repeat(120)]: file('x') }) },
  { name: 'GNU long link name with .. for a hardlink', build: () => T().file('t', 'T').gnuLong('K', '../'.repeat(30) + 'etc/passwd').hardlink('h', 't').build(), expect: refuse('unsafe') },
  { name: 'GNU long link name for a symlink is kept verbatim', build: () => T().gnuLong('K', '../'.repeat(50) + 'x').symlink('s', 'short').build(), expect: tree({ s: sym('../'.repeat(50) + 'x') }) },
  { name: 'PAX path with ..', build: () => T().pax([['path', '../../../../tmp/pax-escape']]).file('innocent', 'x').build(), expect: refuse('unsafe') },
  { name: 'PAX path absolute', build: () => T().pax([['path', '/pax/abs']]).file('innocent', 'x').build(), expect: tree({ 'pax/abs': file('x'), innocent: absent }) },
  { name: 'PAX linkpath with .. for a hardlink', build: () => T().file('t', 'T').pax([['linkpath', '../../etc/passwd']]).hardlink('h', 't').build(), expect: refuse('unsafe') },
  { name: 'PAX path with a NUL byte', build: () => T().pax([['path', 'ok\0../../etc/passwd']]).file('x', 'x').build(), expect: refuse(['corrupt', 'unsafe']) },
  { name: 'PAX overrides GNU long name (last wins: PAX)', build: () => T().gnuLong('L', 'gnu-name').pax([['path', 'pax-name']]).file('ustar-name', 'x').build(), expect: tree({ 'pax-name': file('x'), 'gnu-name': absent, 'ustar-name': absent }) },
  { name: 'ustar prefix field joins the name', build: () => T().file('p'.repeat(60) + '/' + 'q'.repeat(60) + '/' + 'r'.repeat(90), 'long').build(), expect: tree({ ['p'.repeat(60) + '/' + 'q'.repeat(60) + '/' + 'r'.repeat(90)]: file('long') }) },
  { name: 'name component longer than 255 bytes', build: () => T().pax([['path', 'x'.repeat(300)]]).file('x', 'x').build(), expect: refuse('limit') },
  { name: 'name longer than PATH_MAX', build: () => T().pax([['path', ('abcdefgh/'.repeat(500)) + 'f']]).file('x', 'x').build(), expect: refuse('limit') },
  { name: '5000-deep nesting', build: () => T().pax([['path', deepName(5000)]]).dir('x').build(), expect: refuse('limit') },
  { name: '1000-deep nesting of dirs is applied', build: () => { const t = T(); for (let i = 1; i <= 1000; i++) t.dir(deepName(i)); return t.file(deepName(1000) + '/leaf', 'L').build(); }, expect: tree({ [deepName(1000) + '/leaf']: file('L') }) },
  { name: 'non-UTF-8 name', build: () => { const h = rawHeader({ name: 'badXXname', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0, typeflag: '0', linkname: '', devMajor: 0, devMinor: 0 }); h[3] = 0xff; h[4] = 0xfe; setChecksum(h); return T().raw(h).build(); }, expect: refuse('unsupported') },
  { name: 'root entry as a file', build: () => T().file('./', 'x', { name: '.' }).build(), expect: refuse('unsafe') },
  { name: 'root entry as a dir sets root mode', build: () => T().dir('./', { mode: 0o750 }).build(), expect: tree({ '': dir({ mode: 0o750 }) }) },

  // ---- whiteouts ---------------------------------------------------------------------------------------
  { name: 'whiteout of a lower file', build: () => T().file('etc/.wh.passwd').build(), expect: (f) => tree({ 'etc/passwd': whiteout, 'etc/hosts': base(f, file()) }) },
  { name: 'whiteout of a lower dir', build: () => T().file('.wh.d').build(), expect: tree({ d: whiteout, 'd/old': absent }) },
  { name: 'whiteout of something that does not exist', build: () => T().file('.wh.nothing').build(), expect: tree({ nothing: whiteout }) },
  { name: 'whiteout named ..', build: () => T().file('etc/.wh..').build(), expect: refuse('unsafe') },
  { name: 'whiteout named ... (.wh. + ..)', build: () => T().file('.wh...').build(), expect: refuse('unsafe') },
  { name: 'whiteout of the root (.wh. empty name)', build: () => T().file('.wh.').build(), expect: refuse('unsafe') },
  { name: 'whiteout with a .. parent', build: () => T().file('../.wh.etc').build(), expect: refuse('unsafe') },
  { name: 'whiteout through a symlinked parent to the host', build: () => T().symlink('l', '/etc').file('l/.wh.passwd').build(), expect: (f) => (f === 'delete' ? tree({ 'etc/passwd': absent, 'etc/hosts': file() }) : refuse('unsafe')) },
  { name: 'whiteout through a symlink to the outside sentinel', build: (o) => T().symlink('l', o).file('l/.wh.target').build(), expect: (f) => (f === 'delete' ? tree({ l: sym('@OUT@'), 'etc/passwd': file() }) : refuse('unsafe')) },
  { name: 'absolute whiteout name', build: () => T().file('/.wh.etc').build(), expect: tree({ etc: whiteout }) },
  { name: 'opaque marker at the root', build: () => T().file('.wh..wh..opq').file('new', 'N').build(), expect: (f) => tree({ '': dir(f === 'overlay' ? { opaque: true } : {}), etc: absent, d: absent, new: file('N') }) },
  { name: 'opaque dir keeps this layer\'s entries', build: () => T().dir('d').file('d/.wh..wh..opq').file('d/new', 'N').build(), expect: (f) => tree({ d: dir(f === 'overlay' ? { opaque: true } : {}), 'd/old': absent, 'd/sub': absent, 'd/new': file('N') }) },
  { name: 'opaque marker after the dir\'s new entries', build: () => T().dir('d').file('d/new', 'N').file('d/.wh..wh..opq').build(), expect: (f) => tree({ d: dir(f === 'overlay' ? { opaque: true } : {}), 'd/old': absent, 'd/new': file('N') }) },
  { name: 'whiteout then recreate the dir', build: () => T().file('.wh.d').dir('d').file('d/new', 'N').build(), expect: (f) => tree({ d: dir(f === 'overlay' ? { opaque: true } : {}), 'd/old': absent, 'd/new': file('N') }) },
  { name: 'whiteout of a file this layer created (kept)', build: () => T().file('mine', 'M').file('.wh.mine').build(), expect: tree({ mine: file('M') }) },
  { name: 'aufs .wh..wh.plnk metadata is ignored', build: () => T().dir('.wh..wh.plnk').file('.wh..wh.plnk/123.456', 'x').file('ok', 'ok').build(), expect: tree({ ok: file('ok'), '.wh..wh.plnk': absent }) },
  { name: 'opaque marker through a symlink to /', build: () => T().symlink('r', '/').file('r/.wh..wh..opq').build(), expect: (f) => (f === 'overlay' ? tree({ etc: absent, r: sym('/'), '': dir({ opaque: true }) }) : refuse('unsafe')) },
  { name: 'implicit parent of a whiteout copies the lower dir', build: () => T().file('lowdir/.wh.x').build(), expect: (f) => tree({ lowdir: dir({ mode: 0o750, uid: 1000, xattrs: { 'user.low': 'L' } }), 'lowdir/x': whiteout, ...(f === 'overlay' ? {} : {}) }) },

  // ---- type flips ----------------------------------------------------------------------------------------
  { name: 'file then dir', build: () => T().file('x', 'f').dir('x').build(), expect: tree({ x: dir() }) },
  { name: 'dir with children then file', build: () => T().dir('x').file('x/c', 'c').dir('x/y').file('x/y/z', 'z').file('x', 'now a file').build(), expect: tree({ x: file('now a file') }) },
  { name: 'file then symlink', build: () => T().file('x', 'f').symlink('x', 'target').build(), expect: tree({ x: sym('target') }) },
  { name: 'symlink to /etc then dir', build: () => T().symlink('x', '/etc').dir('x').file('x/f', 'f').build(), expect: (f) => tree({ x: dir(), 'x/f': file('f'), 'etc/passwd': base(f, file('root:x:0:0::/root:/bin/sh\n')) }) },
  { name: 'dir then symlink', build: () => T().dir('x').file('x/a', 'a').symlink('x', '/nowhere').build(), expect: tree({ x: sym('/nowhere') }) },
  { name: 'dir then symlink to outside, then a file through it', build: (o) => T().dir('x').symlink('x', o).file('x/b', 'b').build(), expect: refuse('unsafe') },
  { name: 'fifo then file', build: () => T().node('x', 'fifo').file('x', 'f').build(), expect: tree({ x: file('f') }) },
  { name: 'lower dir replaced by a file', build: () => T().file('d', 'file now').build(), expect: (f) => tree({ d: file('file now'), 'd/old': absent }) },
  { name: 'lower file replaced by a dir', build: () => T().dir('lowfile').file('lowfile/in', 'i').build(), expect: tree({ lowfile: dir(), 'lowfile/in': file('i') }) },
  { name: 'device then symlink then file', build: () => T().node('x', 'chardev', 1, 3).symlink('x', '/dev/null').file('x', 'f').build(), expect: tree({ x: file('f') }) },

  // ---- xattrs ----------------------------------------------------------------------------------------------
  { name: 'injected trusted.overlay.opaque', build: () => T().pax([['SCHILY.xattr.trusted.overlay.opaque', 'y']]).dir('d2').build(), expect: refuse('unsafe') },
  { name: 'injected trusted.overlay.redirect', build: () => T().pax([['SCHILY.xattr.trusted.overlay.redirect', '/etc']]).dir('d2').build(), expect: refuse('unsafe') },
  { name: 'injected user.overlay.opaque', build: () => T().pax([['SCHILY.xattr.user.overlay.opaque', 'y']]).dir('d2').build(), expect: refuse('unsafe') },
  { name: 'injected trusted.overlay.* on the root entry', build: () => T().pax([['SCHILY.xattr.trusted.overlay.opaque', 'y']]).dir('./').build(), expect: refuse('unsafe') },
  { name: 'security.capability and user xattrs', build: () => T().pax([['SCHILY.xattr.security.capability', Buffer.from('0100000200200000000000000000000000000000', 'hex')], ['SCHILY.xattr.user.k', 'v']]).file('bin', 'B', { mode: 0o755 }).build(), expect: tree({ bin: file('B', { mode: 0o755, xattrs: { 'security.capability': 'hex:0100000200200000000000000000000000000000', 'user.k': 'v' } }) }) },
  { name: 'user xattr on a symlink is skipped', build: () => T().pax([['SCHILY.xattr.user.k', 'v']]).symlink('s', 't').build(), expect: tree({ s: sym('t') }) },
  { name: 'xattr on a directory', build: () => T().pax([['SCHILY.xattr.user.dir', 'D']]).dir('xd').build(), expect: tree({ xd: dir({ xattrs: { 'user.dir': 'D' } }) }) },

  // ---- devices, owners, modes, times ---------------------------------------------------------------------
  { name: 'char device', build: () => T().node('null', 'chardev', 1, 3, { mode: 0o666 }).build(), expect: tree({ null: { type: 'chardev', major: 1, minor: 3, mode: 0o666 } }) },
  { name: 'block device', build: () => T().node('loop', 'blockdev', 7, 200, { mode: 0o660 }).build(), expect: tree({ loop: { type: 'blockdev', major: 7, minor: 200, mode: 0o660 } }) },
  { name: 'fifo', build: () => T().node('pipe', 'fifo', 0, 0, { mode: 0o600 }).build(), expect: tree({ pipe: { type: 'fifo', mode: 0o600 } }) },
  { name: 'raw 0/0 char device in the archive', build: () => T().node('wh', 'chardev', 0, 0).build(), expect: tree({ wh: { type: 'chardev', major: 0, minor: 0 } }) },
  { name: 'huge uid (base-256) beyond 32 bits', build: () => T().pax([['uid', String(2 ** 40)]]).file('u', 'u').build(), expect: refuse('limit') },
  { name: 'uid 4294967295 ((uid_t)-1)', build: () => T().pax([['uid', '4294967295']]).file('u', 'u').build(), expect: refuse('limit') },
  { name: 'large valid uid/gid', build: () => T().file('u', 'u', { uid: 4294967294, gid: 65534000 }).build(), expect: tree({ u: file('u', { uid: 4294967294, gid: 65534000 }) }) },
  { name: 'setuid, setgid, sticky', build: () => T().file('suid', 's', { mode: 0o4755, uid: 1000 }).file('sgid', 's', { mode: 0o2755, gid: 50 }).dir('tmp', { mode: 0o1777 }).build(), expect: tree({ suid: file('s', { mode: 0o4755, uid: 1000 }), sgid: file('s', { mode: 0o2755, gid: 50 }), tmp: dir({ mode: 0o1777 }) }) },
  { name: 'nanosecond mtime and symlink times', build: () => T().file('t', 't', { mtimeSec: 1600000000, mtimeNsec: 123456789 }).symlink('s', 't', { mtimeSec: 1500000000 }).build(), expect: tree({ t: file('t', { mtime: 1600000000, mtimeNsec: 123456789 }), s: { type: 'symlink', target: 't', mtime: 1500000000 } }) },
  { name: 'directory times set after children', build: () => T().dir('td', { mtimeSec: 1234567890 }).file('td/a', 'a').file('td/b', 'b').build(), expect: tree({ td: dir({ mtime: 1234567890 }) }) },
  { name: 'implicit parents without dir entries', build: () => T().file('i1/i2/i3/f', 'f').build(), expect: tree({ i1: dir({ mode: 0o755 }), 'i1/i2/i3/f': file('f') }) },
  { name: 'implicit parent copies a lower dir', build: () => T().file('lowdir/new', 'n').build(), expect: (f) => tree({ lowdir: dir({ mode: 0o750, uid: 1000, xattrs: { 'user.low': 'L' } }), 'lowdir/new': file('n') }) },

  // ---- format and resource bounds -------------------------------------------------------------------------
  { name: 'PAX header claiming 100 MB', build: () => Buffer.concat([rawHeader({ name: 'pax', mode: 0o644, uid: 0, gid: 0, size: 100 << 20, mtime: 0, typeflag: 'x', linkname: '', devMajor: 0, devMinor: 0 }), Buffer.alloc(4096)]), expect: refuse('limit') },
  { name: 'GNU long name claiming 100 MB', build: () => Buffer.concat([rawHeader({ name: '././@LongLink', mode: 0o644, uid: 0, gid: 0, size: 100 << 20, mtime: 0, typeflag: 'L', linkname: '', devMajor: 0, devMinor: 0, magic: 'gnu' }), Buffer.alloc(4096)]), expect: refuse('limit') },
  { name: 'malformed PAX record length', build: () => T().raw(metaMember('x', Buffer.from('99 path=short\n'))).file('x', 'x').build(), expect: refuse('corrupt') },
  { name: 'PAX size not a number', build: () => T().pax([['size', '12abc']]).file('x', 'x').build(), expect: refuse('corrupt') },
  { name: 'bad header checksum', build: () => corruptByte(T().file('x', 'x').build(), 10), expect: refuse('corrupt') },
  { name: 'bad checksum on the second header', build: () => { const b = T().file('a', 'a').file('b', 'b').build(); return corruptByte(b, 1024 + 5); }, expect: refuse('corrupt') },
  { name: 'GNU sparse entry', build: () => T().rawEntry('sparse', 'S', Buffer.alloc(10)).build(), expect: refuse('unsupported') },
  { name: 'PAX GNU.sparse file', build: () => T().pax([['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0']]).file('sp', 'x').build(), expect: refuse('unsupported') },
  { name: 'unknown entry type', build: () => T().rawEntry('vol', 'V').build(), expect: refuse('unsupported') },
  { name: 'socket-like unknown type Z', build: () => T().rawEntry('z', 'Z').build(), expect: refuse('unsupported') },
  { name: 'global PAX header is ignored', build: () => T().raw(metaMember('g', paxRecords([['comment', 'hello']]))).file('g', 'g').build(), expect: tree({ g: file('g') }) },
  { name: 'truncated inside file data', build: () => T().file('big', 'x'.repeat(5000)).build().subarray(0, 512 + 1000), expect: refuse('truncated') },
  { name: 'truncated at an entry boundary (no end marker)', build: () => T().file('a', 'a').build(false), expect: refuse('truncated') },
  { name: 'truncated inside a header', build: () => T().file('a', 'a').file('b', 'b').build().subarray(0, 1024 + 100), expect: refuse('truncated') },
  { name: 'empty stream', build: () => Buffer.alloc(0), expect: refuse('truncated') },
  { name: 'only the end marker', build: () => endOfArchive(), expect: tree({}) },
  { name: 'lone zero block at the end', build: () => Buffer.concat([T().file('a', 'a').build(false), Buffer.alloc(512)]), expect: tree({ a: file('a') }) },
  { name: 'record padding after the end marker', build: () => Buffer.concat([T().file('a', 'a').build(), Buffer.alloc(8192)]), expect: tree({ a: file('a') }) },
  { name: 'megabytes of garbage after the end marker', build: () => Buffer.concat([T().file('a', 'a').build(), Buffer.alloc(3 << 20, 1)]), expect: refuse('limit') },
  { name: 'truncated gzip', build: () => { const g = gzip(T().file('a', 'x'.repeat(100000)).build()); return g.subarray(0, g.length - 20); }, expect: refuse('truncated') },
  { name: 'corrupt gzip', build: () => { const g = gzip(T().file('a', 'hello '.repeat(10000)).build()); return corruptByte(g, 40); }, expect: refuse(['corrupt', 'truncated']) },
  { name: 'gzip CRC-32 mismatch', build: () => { const g = gzip(T().file('a', 'hello').build()); return corruptByte(g, g.length - 8); }, expect: refuse('corrupt') },
  { name: 'gzip cut inside its trailer', build: () => { const g = gzip(T().file('a', 'hello').build()); return g.subarray(0, g.length - 3); }, expect: refuse('truncated') },
  { name: 'tar split over two gzip members', build: () => { const t = T().file('a', 'x'.repeat(3000)).file('b', 'b').build(); return Buffer.concat([gzip(t.subarray(0, 1536)), gzip(t.subarray(1536))]); }, expect: tree({ a: file('x'.repeat(3000)), b: file('b') }) },
  { name: 'garbage after the last gzip member is ignored (GNU gzip, Node)', build: () => Buffer.concat([gzip(T().file('a', 'a').build()), Buffer.from('not gzip at all')]), expect: tree({ a: file('a') }) },
  { name: 'a second gzip member with a bad header', build: () => Buffer.concat([gzip(T().file('a', 'a').build()), Buffer.from([0x1f, 0x8b, 9, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3])]), expect: refuse('corrupt') },
  { name: 'truncated zstd', build: () => { const z = zstd(T().file('a', 'x'.repeat(100000)).build()); return z.subarray(0, z.length - 10); }, expect: refuse('truncated') },
  { name: 'corrupt zstd', build: () => { const z = zstd(Buffer.concat([T().file('a', 'hello '.repeat(10000)).build()])); return corruptByte(z, 30); }, expect: refuse(['corrupt', 'truncated']) },
  { name: 'gzip bomb', build: () => gzip(zeroFileTar(48 << 20)), limits: { ratioAfter: 8 << 20, maxRatio: 200 }, expect: refuse('limit') },
  { name: 'zstd bomb', build: () => zstd(zeroFileTar(48 << 20)), limits: { ratioAfter: 8 << 20, maxRatio: 1100 }, expect: refuse('limit') },
  { name: 'xz layer', build: () => Buffer.from('fd377a585a000004e6d6b446', 'hex'), expect: refuse('unsupported') },
  { name: 'entry-count bomb (a million tiny entries, limit 10000)', build: () => millionEntries(), limits: { maxEntries: 10_000 }, expect: refuse('limit') },
  { name: 'twenty thousand tiny entries are applied', build: () => zstd(tarOfFiles(20_000, (i) => `m/${i % 50}/f${i}`)), expect: tree({ 'm/0/f0': file(''), 'm/49/f19999': file('') }) },
  { name: 'diffID mismatch', build: () => T().file('a', 'a').build(), diffId: () => 'sha256:' + '0'.repeat(64), expect: refuse('digest') },
  { name: 'diffID match (gzip: digest of the uncompressed tar)', build: () => gzip(T().file('a', 'a').build()), diffId: (b) => sha256(require('node:zlib').gunzipSync(b) as Buffer), expect: tree({ a: file('a') }) },
  { name: 'base-256 size and uid fields', build: () => { const h = rawHeader({ name: 'b256', mode: 0o644, uid: 0, gid: 0, size: 3, mtime: 0, typeflag: '0', linkname: '', devMajor: 0, devMinor: 0 }); h.fill(0, 124, 136); h[124] = 0x80; h[135] = 3; h.fill(0, 108, 116); h[108] = 0x80; h[115] = 77; setChecksum(h); return Buffer.concat([h, Buffer.from('abc'), Buffer.alloc(509), endOfArchive()]); }, expect: tree({ b256: file('abc', { uid: 77 }) }) },
  { name: 'pre-POSIX dir (trailing slash on a regular header)', build: () => T().raw(rawHeader({ name: 'olddir/', mode: 0o700, uid: 0, gid: 0, size: 0, mtime: 0, typeflag: '\0', linkname: '', devMajor: 0, devMinor: 0 })).build(), expect: tree({ olddir: dir({ mode: 0o700 }) }) },
];
