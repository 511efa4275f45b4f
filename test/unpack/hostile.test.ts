/**
 * Runs the hostile-archive corpus (corpus.ts) through the real engine, as root, for both whiteout forms: the
 * expected refusal or exact paths, and nothing outside the target changed (a sentinel tree beside it, the lower
 * layer, a few host files).
 */
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { native } from '../../native/index';
import { applyLayer } from '../../src/unpack/engine';
import { UnpackError } from '../../src/unpack/errors';
import { backendMissing, createBtrfs, createZfsPool, run, zfsXattrsMissing } from '../helpers/backends';
import { selectedDrivers } from '../helpers/drivers';
import { BASE, CASES, type Case, type Expect, type Form, type Spec } from './corpus';

const HOST_FILES = ['/etc/passwd', '/etc/shadow', '/etc/hosts', '/usr/bin/env'];
const HOST_ABSENT = ['/tmp/escape', '/tmp/x', '/tmp/pax-escape', '/escape', '/pwned', '/etc/pwned'];

function populateBase(dir: string): void {
  const n = native();
  for (const b of BASE) {
    const p = path.join(dir, b.path);
    if (b.type === 'dir') fs.mkdirSync(p, { mode: b.mode ?? 0o755 });
    else if (b.type === 'file') fs.writeFileSync(p, b.content ?? '', { mode: b.mode ?? 0o644 });
    else fs.symlinkSync(b.content ?? '', p);
    if (b.mode !== undefined) fs.chmodSync(p, b.mode);
    if (b.uid !== undefined) fs.lchownSync(p, b.uid, b.uid);
    if (b.xattr) n.lsetxattr(p, b.xattr[0], Buffer.from(b.xattr[1]), 0);
  }
}

/** Everything under dir but `skip`, as comparable lines (type, mode, owner, size, content hash, target, mtime). */
function fingerprint(dir: string, skip: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    const p = path.join(dir, rel);
    const st = fs.lstatSync(p);
    let extra = '';
    if (st.isFile()) extra = createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    else if (st.isSymbolicLink()) extra = fs.readlinkSync(p);
    out.set(rel, `${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.nlink} ${st.mtimeMs} ${extra}`);
    if (st.isDirectory()) for (const c of fs.readdirSync(p)) if (path.join(rel, c) !== skip) walk(path.join(rel, c));
  };
  walk('.');
  for (const h of HOST_FILES) {
    try {
      const st = fs.lstatSync(h);
      out.set(h, `${st.mode} ${st.size} ${st.nlink} ${st.mtimeMs} ${st.ino}`);
    } catch {
      out.set(h, 'missing');
    }
  }
  return out;
}

function lstatOrNull(p: string): fs.BigIntStats | null {
  try {
    return fs.lstatSync(p, { bigint: true });
  } catch (e) {
    const c = (e as { code?: string }).code;
    if (c === 'ENOENT' || c === 'ENOTDIR') return null;
    throw e;
  }
}

/**
 * What a backend filesystem can store. zfs-fuse refuses owners above 2^31-1 with EINVAL (it reads them as
 * Solaris ephemeral ids) and keeps whole-second times; a layer that needs more cannot be applied there
 * faithfully, so on such a backend the suite expects the unpacker to refuse it cleanly (an I/O error naming the
 * entry, nothing outside the target touched) and compares times at the backend's resolution.
 */
interface FsLimits {
  maxId: number;
  timeResolutionNs: number;
}

const FULL_LINUX: FsLimits = { maxId: 2 ** 32 - 2, timeResolutionNs: 1 };

function checkSpec(root: string, rel: string, spec: Spec, form: Form, limits: FsLimits = FULL_LINUX): void {
  const p = path.join(root, rel);
  const st = lstatOrNull(p);
  const where = `"${rel}" (${form})`;
  let s: Spec = spec;
  if (s.type === 'whiteout') {
    if (form === 'delete') s = { type: 'absent' };
    else s = { type: 'chardev', major: 0, minor: 0 };
  }
  if (s.type === 'absent') {
    assert.equal(st, null, `${where} should not exist`);
    return;
  }
  assert.ok(st, `${where} should exist`);
  const mode = Number(st.mode & 0o7777n);
  switch (s.type) {
    case 'file': {
      assert.ok(st.isFile(), `${where} should be a file`);
      if (s.content !== undefined) assert.equal(fs.readFileSync(p, 'utf8'), s.content, `${where} content`);
      if (s.mode !== undefined) assert.equal(mode, s.mode, `${where} mode`);
      if (s.uid !== undefined) assert.equal(Number(st.uid), s.uid, `${where} uid`);
      if (s.gid !== undefined) assert.equal(Number(st.gid), s.gid, `${where} gid`);
      if (s.sameInodeAs !== undefined) assert.equal(st.ino, fs.lstatSync(path.join(root, s.sameInodeAs), { bigint: true }).ino, `${where} hardlinked to ${s.sameInodeAs}`);
      if (s.mtime !== undefined) assert.equal(Number(st.mtimeNs / 1_000_000_000n), s.mtime, `${where} mtime`);
      if (s.mtimeNsec !== undefined) {
        const want = s.mtimeNsec - (s.mtimeNsec % limits.timeResolutionNs);
        assert.equal(Number(st.mtimeNs % 1_000_000_000n), want, `${where} mtime ns (resolution ${limits.timeResolutionNs} ns)`);
      }
      if (s.xattrs) checkXattrs(p, s.xattrs, where);
      return;
    }
    case 'dir':
      assert.ok(st.isDirectory(), `${where} should be a directory`);
      if (s.mode !== undefined) assert.equal(mode, s.mode, `${where} mode`);
      if (s.uid !== undefined) assert.equal(Number(st.uid), s.uid, `${where} uid`);
      if (s.mtime !== undefined) assert.equal(Number(st.mtimeNs / 1_000_000_000n), s.mtime, `${where} mtime`);
      if (s.opaque) assert.equal(native().lgetxattr(p, 'trusted.overlay.opaque')?.toString(), 'y', `${where} opaque`);
      if (s.xattrs) checkXattrs(p, s.xattrs, where);
      return;
    case 'symlink':
      assert.ok(st.isSymbolicLink(), `${where} should be a symlink`);
      assert.equal(fs.readlinkSync(p), s.target, `${where} target`);
      if (s.mtime !== undefined) assert.equal(Number(st.mtimeNs / 1_000_000_000n), s.mtime, `${where} mtime`);
      return;
    case 'chardev':
    case 'blockdev': {
      assert.ok(s.type === 'chardev' ? st.isCharacterDevice() : st.isBlockDevice(), `${where} should be a ${s.type}`);
      const rdev = Number(st.rdev);
      assert.equal((rdev >> 8) & 0xfff, s.major, `${where} major`);
      assert.equal((rdev & 0xff) | ((rdev >> 12) & 0xfff00), s.minor, `${where} minor`);
      if (s.mode !== undefined) assert.equal(mode, s.mode, `${where} mode`);
      return;
    }
    case 'fifo':
      assert.ok(st.isFIFO(), `${where} should be a FIFO`);
      if (s.mode !== undefined) assert.equal(mode, s.mode, `${where} mode`);
      return;
  }
}

function checkXattrs(p: string, want: Record<string, string>, where: string): void {
  for (const [k, v] of Object.entries(want)) {
    const got = native().lgetxattr(p, k);
    assert.ok(got, `${where} xattr ${k} missing`);
    if (v.startsWith('hex:')) assert.equal(got.toString('hex'), v.slice(4), `${where} xattr ${k}`);
    else assert.equal(got.toString(), v, `${where} xattr ${k}`);
  }
}

const isRoot = process.geteuid?.() === 0;

/**
 * One case in one form, with its whole world (target, lower layer, sentinel tree, archive) in a fresh directory
 * under `base`: the filesystem under test holds the target and what must stay untouched beside it alike.
 */
/** Does an expected tree hold an owner the backend cannot store? */
function needsIdsAbove(expect: Expect, maxId: number): boolean {
  if (!('tree' in expect)) return false;
  return Object.values(expect.tree).some((spec) => {
    const o = spec as { uid?: number; gid?: number };
    return (o.uid ?? 0) > maxId || (o.gid ?? 0) > maxId;
  });
}

async function runCase(c: Case, form: Form, base: string, limits: FsLimits = FULL_LINUX): Promise<void> {
  const dir = fs.mkdtempSync(path.join(base, 'strata-hostile-'));
  try {
    const outside = path.join(dir, 'outside');
    fs.mkdirSync(path.join(outside, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(outside, 'target'), 'SAFE');
    fs.writeFileSync(path.join(outside, 'sub', 'x'), 'SAFE');
    const lower = path.join(dir, 'lower');
    const root = path.join(dir, 'root');
    fs.mkdirSync(lower);
    fs.mkdirSync(root);
    populateBase(lower);
    if (form === 'delete') populateBase(root);
    const archive = c.build(outside);
    const layer = path.join(dir, 'layer');
    fs.writeFileSync(layer, archive);
    const was = fingerprint(dir, 'root');
    // Other processes share /tmp: what matters is that this apply did not create these.
    const existedBefore = HOST_ABSENT.filter((p) => fs.existsSync(p));

    const declared: Expect = typeof c.expect === 'function' ? c.expect(form) : c.expect;
    const expect: Expect = needsIdsAbove(declared, limits.maxId) ? { refuse: 'io' } : declared;
    let err: unknown = null;
    try {
      await applyLayer({ layer, root, whiteouts: form, lowerDirs: form === 'overlay' ? [lower] : [], limits: c.limits, diffId: c.diffId?.(archive), sync: 'none' });
    } catch (e) {
      err = e;
    }
    if ('refuse' in expect) {
      const kinds = Array.isArray(expect.refuse) ? expect.refuse : [expect.refuse];
      assert.ok(err instanceof UnpackError, `expected a refusal (${kinds.join('|')}), got ${err ? String(err) : 'success'}`);
      assert.ok(kinds.includes(err.kind), `expected ${kinds.join('|')}, got ${err.kind}: ${err.message}`);
    } else {
      if (err) throw err;
      const sub = (s: string): string => s.replaceAll('@OUTREL@', outside.slice(1)).replaceAll('@OUT@', outside);
      for (const [rel, spec] of Object.entries(expect.tree)) {
        const s2 = spec.type === 'symlink' ? { ...spec, target: sub(spec.target) } : spec;
        checkSpec(root, sub(rel), s2, form, limits);
      }
    }
    const now = fingerprint(dir, 'root');
    assert.deepEqual([...now].filter(([k, v]) => was.get(k) !== v), [], 'something outside the target changed');
    assert.deepEqual([...was.keys()].filter((k) => !now.has(k)), [], 'something outside the target was removed');
    for (const p of HOST_ABSENT) if (!existedBefore.includes(p)) assert.equal(fs.existsSync(p), false, `${p} was created`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

for (const form of ['overlay', 'delete'] as const) {
  describe(`hostile corpus, ${form} whiteouts`, { skip: isRoot ? false : 'needs root (owners, devices, trusted.* xattrs)' }, () => {
    for (const c of CASES) {
      if (c.only && c.only !== form) continue;
      test(c.name, () => runCase(c, form, os.tmpdir()));
    }
  });
}

/** A directory on the backend under test for the cases to work in, or why there is none. */
type Backend = { base: string; limits?: FsLimits; teardown(): Promise<void> } | { skip: string };

/**
 * btrfs and zfs snapshots are unpacked into in 'delete' form (a writable copy of the parent; whiteouts remove),
 * so the corpus runs in that form with everything on the driver's filesystem: a loopback btrfs, and a dataset of
 * a zfs-fuse pool (mounted through its mountpoint property: zfs-fuse has no kernel filesystem type for mount(2)).
 * One backend per file run.
 */
const BACKENDS: Array<{ label: 'btrfs' | 'zfs'; setup(): Promise<Backend> }> = [
  {
    label: 'btrfs',
    async setup() {
      const missing = await backendMissing('btrfs');
      if (missing) return { skip: missing };
      const b = await createBtrfs({ sizeMiB: 512 });
      return { base: b.mountpoint, teardown: () => b.cleanup() };
    },
  },
  {
    label: 'zfs',
    async setup() {
      const missing = (await backendMissing('zfs')) ?? zfsXattrsMissing();
      if (missing) return { skip: missing };
      const pool = await createZfsPool({ sizeMiB: 512 });
      const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-hostile-zfs-'));
      try {
        await run('zfs', ['create', '-o', `mountpoint=${mnt}`, `${pool.dataset}/hostile`]);
      } catch (e) {
        await pool.cleanup();
        fs.rmSync(mnt, { recursive: true, force: true });
        throw e;
      }
      return {
        base: mnt,
        limits: { maxId: 2 ** 31 - 1, timeResolutionNs: 1_000_000_000 },
        async teardown() {
          // Destroying the pool unmounts the dataset; the mountpoint directory is ours.
          await pool.cleanup();
          fs.rmSync(mnt, { recursive: true, force: true });
        },
      };
    },
  },
];

for (const b of BACKENDS) {
  // Named like the driver entries, so STRATA_TEST_DRIVERS=overlay,native leaves these targets out as well.
  const selected = selectedDrivers((e) => e.label === b.label).length > 0;
  const skip = !isRoot
    ? 'needs root (loop devices, mounts, owners, devices, trusted.* xattrs)'
    : selected
      ? false
      : `${b.label} is not in STRATA_TEST_DRIVERS=${process.env.STRATA_TEST_DRIVERS ?? ''}`;
  describe(`hostile corpus, delete whiteouts, on ${b.label}`, { skip }, () => {
    let backend: Backend = { skip: 'backend setup did not run' };
    let t0 = 0;
    before(async () => {
      t0 = Date.now();
      backend = await b.setup();
    }, { timeout: 120_000 });
    after(async () => {
      if ('teardown' in backend) await backend.teardown();
      console.log(`# hostile corpus on ${b.label}: ${((Date.now() - t0) / 1000).toFixed(1)} s with backend setup and teardown`);
    }, { timeout: 120_000 });
    for (const c of CASES) {
      if (c.only && c.only !== 'delete') continue;
      test(c.name, async (t) => {
        if ('skip' in backend) {
          t.skip(backend.skip);
          return;
        }
        await runCase(c, 'delete', backend.base, backend.limits);
      });
    }
  });
}
