/**
 * The native driver, as root: a child snapshot is a faithful copy of its parent (modes, owners, xattrs of
 * several namespaces, file capabilities, hardlink groups, devices, fifos, sockets, symlinks, nanosecond times),
 * layering with plain deletions, read-only views, usage, and FICLONE reflinks on a loopback btrfs (shared
 * extents checked with filefrag).
 */
import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { native } from '../../native/index';
import { isStrataError, toStrataError } from '../../src/core/errors';
import { mountAll, unmountAll } from '../../src/core/mount';
import { snapshotTree, assertTreesEqual } from '../helpers/tree';
import { backendMissing, cleanupStale, createBtrfs, run, type LoopBackend } from '../helpers/backends';
import { createHarness, fileContents, tryWrite, type Harness } from './harness';
import { copyTree } from '../../drivers/native/copy';
import { loadDriverModule } from '../../drivers/index';
import { applyLayer } from '../../src/unpack/engine';
import { TarBuilder } from '../unpack/builder';

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;

/** A tree exercising everything a copy must keep. Times are set last, with odd nanoseconds. */
function buildFidelityTree(dir: string): void {
  const n = native();
  const p = (r: string): string => path.join(dir, r);
  fs.mkdirSync(p('etc'));
  fs.writeFileSync(p('etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
  fs.mkdirSync(p('bin'));
  fs.writeFileSync(p('bin/su'), Buffer.alloc(10000, 3));
  fs.chownSync(p('bin/su'), 0, 0);
  fs.chmodSync(p('bin/su'), 0o4755);
  fs.writeFileSync(p('bin/ping'), 'ping');
  fs.chmodSync(p('bin/ping'), 0o755);
  // A file capability (cap_net_raw+ep, VFS_CAP_REVISION_2 layout): chown would clear it, order matters.
  const cap = Buffer.alloc(20);
  cap.writeUInt32LE(0x02000001, 0);
  cap.writeUInt32LE(1 << 13, 4);
  n.lsetxattr(p('bin/ping'), 'security.capability', cap, 0);
  fs.mkdirSync(p('home/user'), { recursive: true });
  fs.writeFileSync(p('home/user/notes'), 'mine');
  fs.chownSync(p('home/user/notes'), 1000, 1000);
  fs.chownSync(p('home/user'), 1000, 1001);
  fs.chmodSync(p('home/user'), 0o700);
  n.lsetxattr(p('home/user/notes'), 'user.comment', Buffer.from('hello'), 0);
  n.lsetxattr(p('home/user/notes'), 'trusted.secret', Buffer.from([0, 1, 2, 255]), 0);
  n.lsetxattr(p('home/user'), 'user.dir', Buffer.from('d'), 0);
  fs.mkdirSync(p('tmp'));
  fs.chmodSync(p('tmp'), 0o1777);
  fs.mkdirSync(p('ro'));
  fs.writeFileSync(p('ro/file'), 'r');
  fs.chmodSync(p('ro/file'), 0o444);
  fs.chmodSync(p('ro'), 0o555);
  // Hardlinks: a group of three across directories, and a pair.
  fs.writeFileSync(p('etc/hl'), 'shared');
  fs.linkSync(p('etc/hl'), p('bin/hl2'));
  fs.linkSync(p('etc/hl'), p('home/hl3'));
  fs.writeFileSync(p('etc/pair'), 'pair');
  fs.linkSync(p('etc/pair'), p('etc/pair2'));
  fs.symlinkSync('../etc/passwd', p('bin/link'));
  fs.lchownSync(p('bin/link'), 1000, 1000);
  fs.symlinkSync('/nonexistent/target', p('dangling'));
  fs.mkdirSync(p('dev'));
  n.mknodat(-100, p('dev/null'), S_IFCHR | 0o666, 1, 3);
  n.mknodat(-100, p('dev/loopx'), S_IFBLK | 0o660, 7, 200);
  n.mknodat(-100, p('dev/big'), S_IFCHR | 0o600, 300, 70000);
  n.mknodat(-100, p('dev/fifo'), S_IFIFO | 0o640, 0, 0);
  n.mknodat(-100, p('dev/sock'), S_IFSOCK | 0o755, 0, 0);
  fs.writeFileSync(p('sparse'), '');
  fs.truncateSync(p('sparse'), 5 * 1024 * 1024);
  // Times: deepest first so that creating children does not disturb a parent's mtime afterwards.
  const all: string[] = [];
  const walk = (r: string): void => {
    for (const name of fs.readdirSync(p(r))) {
      const c = r ? `${r}/${name}` : name;
      if (fs.lstatSync(p(c)).isDirectory()) walk(c);
      all.push(c);
    }
  };
  walk('');
  all.push('');
  let i = 0;
  for (const r of all) {
    i++;
    n.utimensat(-100, r === '' ? dir : p(r), 1_000_000 + i, 123_456_789, 1_500_000_000 + i, 987_654_321 - i, 0x100);
  }
}

/** mtime in ns of every entry below dir, by relative path (reading a tree moves atimes, so they are not compared). */
function times(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (r: string): void => {
    const st = fs.lstatSync(r ? path.join(dir, r) : dir, { bigint: true });
    out[r] = String(st.mtimeNs);
    if (st.isDirectory()) for (const name of fs.readdirSync(r ? path.join(dir, r) : dir)) walk(r ? `${r}/${name}` : name);
  };
  walk('');
  return out;
}

describe('native driver', () => {
  let h: Harness;
  before(async () => {
    h = await createHarness('native');
  });
  after(async () => {
    if (h) await h.cleanup();
  });

  test('status, whiteout form, rebase', async () => {
    const s = await h.driver.status();
    assert.equal(s.driver, 'native');
    assert.ok(s.backingFs);
    assert.ok(s.reflink);
    assert.equal(h.driver.whiteouts, 'delete');
    assert.equal(h.driver.canRebase, false);
  });

  test('a child is a faithful copy: modes, owners, xattrs, caps, hardlinks, devices, fifos, sockets, times', async () => {
    const base = await h.create('active');
    const target = await h.driver.openApplyTarget(base);
    assert.equal(target.whiteouts, 'delete');
    buildFidelityTree(target.dir);
    await target.release();
    const c1 = await h.commit(base);
    const src = path.join(h.root, 'snapshots', String(c1.id), 'fs');
    const expected = snapshotTree(src);
    const expectedTimes = times(src);

    const a = await h.create('active', c1);
    const copy = path.join(h.root, 'snapshots', String(a.id), 'fs');
    assertTreesEqual(snapshotTree(copy), expected, 'copy');
    assert.deepEqual(times(copy), expectedTimes, 'mtime to the nanosecond (atimes move whenever the source is read)');
    // Hardlink groups stay groups in the copy, and are distinct from the parent's inodes.
    const ino = (r: string): bigint => fs.lstatSync(path.join(copy, r), { bigint: true }).ino;
    assert.equal(ino('etc/hl'), ino('bin/hl2'));
    assert.equal(ino('etc/hl'), ino('home/hl3'));
    assert.notEqual(ino('etc/hl'), fs.lstatSync(path.join(src, 'etc/hl'), { bigint: true }).ino);
    assert.equal(fs.lstatSync(path.join(copy, 'etc/hl')).nlink, 3);
    assert.equal(fs.lstatSync(path.join(copy, 'dev/sock')).isSocket(), true);
    assert.ok(fs.statSync(path.join(copy, 'sparse')).blocks * 512 < 5 * 1024 * 1024, 'sparse file stays sparse');

    // The mounted active (rw bind) is the same tree and writable; the parent is untouched by writes.
    const dir = await h.mount(a);
    assertTreesEqual(snapshotTree(dir), expected, 'mounted copy');
    fs.writeFileSync(path.join(dir, 'etc/hl'), 'changed');
    assert.equal(fs.readFileSync(path.join(dir, 'home/hl3'), 'utf8'), 'changed');
    assert.equal(fs.readFileSync(path.join(src, 'etc/hl'), 'utf8'), 'shared');
    await h.unmount(dir);
  });

  test('layering with plain deletions; views are read-only copies', async () => {
    const base = await h.create('active');
    let dir = await h.mount(base);
    fs.writeFileSync(path.join(dir, 'a'), '1');
    fs.mkdirSync(path.join(dir, 'd'));
    fs.writeFileSync(path.join(dir, 'd/x'), 'x');
    await h.unmount(dir);
    const c1 = await h.commit(base);
    const a2 = await h.create('active', c1);
    dir = await h.mount(a2);
    fs.unlinkSync(path.join(dir, 'a'));
    fs.rmSync(path.join(dir, 'd'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'd'));
    fs.writeFileSync(path.join(dir, 'd/y'), 'y');
    await h.unmount(dir);
    const c2 = await h.commit(a2);
    const v = await h.create('view', c2);
    assert.deepEqual(await h.driver.mounts(v), [{ type: 'bind', source: path.join(h.root, 'snapshots', String(v.id), 'fs'), options: ['ro', 'rbind'] }]);
    dir = await h.mount(v);
    assert.deepEqual(fileContents(dir), { 'd/y': 'y' });
    assert.equal(tryWrite(path.join(dir, 'new')), 'EROFS');
    assert.equal(tryWrite(path.join(dir, 'd/y')), 'EROFS');
    await h.unmount(dir);
    // The parent layer still holds what it had.
    assert.deepEqual(fileContents(path.join(h.root, 'snapshots', String(c1.id), 'fs')), { a: '1', 'd/x': 'x' });
    const tree = await h.driver.openTree(c2);
    assert.deepEqual(fileContents(tree.dir), { 'd/y': 'y' });
    await tree.release();
  });

  test('usage walks the whole tree, hardlinks once', async () => {
    const base = await h.create('active');
    const t = await h.driver.openApplyTarget(base);
    fs.writeFileSync(path.join(t.dir, 'f'), Buffer.alloc(128 * 1024, 1));
    fs.linkSync(path.join(t.dir, 'f'), path.join(t.dir, 'g'));
    const u = await h.driver.usage(base);
    assert.equal(u.method, 'walk');
    assert.equal(u.inodes, 2);
    assert.ok(u.size >= 128 * 1024 && u.size < 256 * 1024, `size ${u.size}`);
  });

  test('a size limit is refused clearly where project quotas are missing', async (t) => {
    const s = await h.driver.status();
    if (!s.quota!.startsWith('none')) return t.skip(`quota available here (${s.quota}); see quota.test.ts`);
    await assert.rejects(h.create('active', undefined, 1 << 20), (e: unknown) => isStrataError(e, 'FailedPrecondition'));
  });

  test('an unpacked layer is stored as its changes; every snapshot taken from it is a whole, plain tree', async () => {
    assert.equal((await h.driver.status()).unpackedLayers, 'changes only (deltas)');
    const base = await h.create('active');
    const t = await h.driver.openApplyTarget(base);
    assert.equal(t.whiteouts, 'delete', 'a base layer is a whole tree');
    const p = (r: string): string => path.join(t.dir, r);
    fs.mkdirSync(p('d'), { mode: 0o750 });
    fs.writeFileSync(p('d/f'), 'parent');
    fs.chmodSync(p('d/f'), 0o4755);
    fs.writeFileSync(p('d/gone'), 'deleted by the first delta');
    fs.mkdirSync(p('opq/sub'), { recursive: true });
    fs.writeFileSync(p('opq/sub/hidden'), 'hidden by an opaque dir');
    fs.writeFileSync(p('keep'), 'kept');
    fs.symlinkSync('d/f', p('l'));
    const c = await h.commit(base);
    const parentDir = path.join(h.root, 'snapshots', String(c.id), 'fs');
    const parentTree = snapshotTree(parentDir);

    // Layer 2 through the applier in the form the driver asks for, as the daemon's Unpack does.
    const l2 = new TarBuilder()
      .file('d/f', 'replaced', { mode: 0o755 })
      .file('d/.wh.gone')
      .dir('opq')
      .file('opq/.wh..wh..opq')
      .file('opq/new', 'new in an opaque dir')
      .hardlink('keep-link', 'keep')
      .file('etc/implicit-parent', 'x')
      .build();
    const d1 = { id: 100, kind: 'active' as const, parents: [c.id] };
    await h.driver.create(d1, { applyOnly: true });
    const d1Dir = path.join(h.root, 'snapshots', '100', 'fs');
    assert.deepEqual(fs.readdirSync(d1Dir), [], 'nothing of the parent is linked or copied');
    assert.deepEqual((await h.driver.mounts(d1))[0]!.options, ['ro', 'rbind'], 'a delta is never mounted writable');
    const t1 = await h.driver.openApplyTarget(d1);
    assert.equal(t1.whiteouts, 'overlay');
    assert.deepEqual(t1.lowerDirs, [parentDir]);
    await applyLayer({ layer: Readable.from([l2]), root: t1.dir, whiteouts: t1.whiteouts, lowerDirs: t1.lowerDirs, sync: 'none' });
    const c1 = await h.commit(d1);
    // The delta holds the layer's entries in overlay's form, and the one lower file a hardlink needed copied up.
    assert.deepEqual(fs.readdirSync(d1Dir).sort(), ['d', 'etc', 'keep', 'keep-link', 'opq']);
    assert.ok(fs.lstatSync(path.join(d1Dir, 'd/gone')).isCharacterDevice(), 'a deletion is a whiteout device');
    assert.equal(native().lgetxattr(path.join(d1Dir, 'opq'), 'trusted.overlay.opaque')?.toString(), 'y');
    assert.deepEqual(fs.readdirSync(path.join(d1Dir, 'opq')), ['new']);

    // Layer 3 on top of the delta: a delta of a delta, consulting both below.
    const l3 = new TarBuilder().file('.wh.keep-link').file('opq/.wh.new').file('d/added', 'in layer 3').build();
    const d2 = { id: 101, kind: 'active' as const, parents: [c1.id, c.id] };
    await h.driver.create(d2, { applyOnly: true });
    const t2 = await h.driver.openApplyTarget(d2);
    assert.deepEqual(t2.lowerDirs, [d1Dir, parentDir], 'the deltas below, then the nearest whole tree');
    await applyLayer({ layer: Readable.from([l3]), root: t2.dir, whiteouts: t2.whiteouts, lowerDirs: t2.lowerDirs, sync: 'none' });
    const c2 = await h.commit(d2);

    // The reference: the same layers applied with real deletions onto a copy of the parent.
    const ref = fs.mkdtempSync(path.join(h.root, 'ref-'));
    fs.rmdirSync(ref);
    await copyTree(parentDir, ref);
    for (const layer of [l2, l3]) await applyLayer({ layer: Readable.from([layer]), root: ref, whiteouts: 'delete', sync: 'none' });
    const refTree = snapshotTree(ref);
    assert.ok(!refTree.has('d/gone') && !refTree.has('opq/sub') && !refTree.has('keep-link') && refTree.has('d/added'));

    // A container's snapshot on top: whole, writable, its own inodes.
    const ctr = await h.create('active', c2);
    const ctrDir = path.join(h.root, 'snapshots', String(ctr.id), 'fs');
    assertTreesEqual(snapshotTree(ctrDir), refTree, 'a container on top of two deltas');
    assert.deepEqual((await h.driver.mounts(ctr))[0]!.options, ['rw', 'rbind']);
    const ino = (dir: string, r: string): bigint => fs.lstatSync(path.join(dir, r), { bigint: true }).ino;
    assert.notEqual(ino(ctrDir, 'd/added'), ino(path.join(h.root, 'snapshots', '101', 'fs'), 'd/added'), 'copied, not linked');
    assert.notEqual(ino(ctrDir, 'keep'), ino(parentDir, 'keep'));
    // A view of the middle layer shows it as of layer 2.
    const view = await h.create('view', c1);
    const viewTree = snapshotTree(path.join(h.root, 'snapshots', String(view.id), 'fs'));
    assert.equal(viewTree.get('opq/new')?.type, 'file', 'layer 2 made opq/new');
    assert.equal(viewTree.get('keep-link')?.type, 'file', 'layer 2 made keep-link');
    assert.ok(!viewTree.has('d/added') && !viewTree.has('opq/sub') && !viewTree.has('d/gone'));

    // openTree of a delta: a whole tree for the reader, removed by release().
    const tree = await h.driver.openTree(c2);
    assertTreesEqual(snapshotTree(tree.dir), refTree, 'openTree of a delta');
    await tree.release();
    assert.ok(!fs.existsSync(tree.dir), 'the reader\'s tree is removed');

    // Usage of a delta is its own layer's, as for overlay.
    const u = await h.driver.usage(c2);
    assert.ok(u.inodes < 10, `a delta's usage counts its own entries (${u.inodes})`);
    assertTreesEqual(snapshotTree(parentDir), parentTree, 'the parent is unchanged');
    await h.driver.remove(ctr.id);
    await h.driver.remove(view.id);
    assertTreesEqual(snapshotTree(parentDir), parentTree, 'the parent is unchanged by removing its children');
  });

  test('with layer_deltas = false, an applyOnly child hard-links its parent\'s files, mounts read-only, and a plain child copies', async () => {
    const hl = await createHarness('native', { config: { layer_deltas: false } });
    try {
      const s = await hl.driver.status();
      assert.equal(s.unpackedLayers, 'whole trees: layer_deltas = false');
      const base = await hl.create('active');
      const t = await hl.driver.openApplyTarget(base);
      fs.mkdirSync(path.join(t.dir, 'd'), { mode: 0o750 });
      fs.writeFileSync(path.join(t.dir, 'd/f'), 'parent');
      fs.chmodSync(path.join(t.dir, 'd/f'), 0o4755);
      fs.symlinkSync('d/f', path.join(t.dir, 'l'));
      const c = await hl.commit(base);
      const parentDir = path.join(hl.root, 'snapshots', String(c.id), 'fs');
      const parentTree = snapshotTree(parentDir);
      const ino = (dir: string, r: string): bigint => fs.lstatSync(path.join(dir, r), { bigint: true }).ino;

      const shared = { id: 100, kind: 'active' as const, parents: [c.id] };
      await hl.driver.create(shared, { applyOnly: true });
      const sharedDir = path.join(hl.root, 'snapshots', '100', 'fs');
      assertTreesEqual(snapshotTree(sharedDir), parentTree, 'linked tree');
      assert.equal(ino(sharedDir, 'd/f'), ino(parentDir, 'd/f'), 'files are the parent\'s inodes');
      assert.equal(ino(sharedDir, 'l'), ino(parentDir, 'l'), 'symlinks too');
      assert.notEqual(ino(sharedDir, 'd'), ino(parentDir, 'd'), 'directories are new');
      const m = await hl.driver.mounts(shared);
      assert.deepEqual(m[0]!.options, ['ro', 'rbind'], 'never mounted writable: a write would land in the parent');

      const plain = await hl.create('active', c);
      const plainDir = path.join(hl.root, 'snapshots', String(plain.id), 'fs');
      assert.notEqual(ino(plainDir, 'd/f'), ino(parentDir, 'd/f'), 'a container\'s snapshot gets its own copies');
      assert.deepEqual((await hl.driver.mounts(plain))[0]!.options, ['rw', 'rbind']);
      assertTreesEqual(snapshotTree(parentDir), parentTree, 'parent unchanged');
      await hl.driver.remove(100);
      assertTreesEqual(snapshotTree(parentDir), parentTree, 'parent unchanged by removing the linked child');
    } finally {
      await hl.cleanup();
    }
  });

  test('trees made for readers of a delta that a crash left in tmp/ are removed at startup', async () => {
    const left = path.join(h.root, 'tmp', 'tree-7-x1y2', 'fs');
    fs.mkdirSync(path.join(left, 'd'), { recursive: true });
    fs.writeFileSync(path.join(left, 'd/f'), 'a link in real life');
    const other = path.join(h.root, 'tmp', 'not-ours');
    fs.mkdirSync(other);
    const again = loadDriverModule('native').create({ root: h.root, config: {} });
    await again.init();
    assert.ok(!fs.existsSync(path.dirname(left)), 'the reader tree is gone');
    assert.ok(fs.existsSync(other), 'nothing else in tmp/ is touched');
    await again.close();
    fs.rmdirSync(other);
  });

  test('a create interrupted by a crash is redone; remove is idempotent', async () => {
    const base = await h.create('active');
    fs.writeFileSync(path.join(h.root, 'snapshots', String(base.id), 'fs', 'f'), 'f');
    const c = await h.commit(base);
    const ref = { id: 9999, kind: 'active' as const, parents: [c.id] };
    // What a crash mid-copy leaves: the directory with a partial copy.
    fs.mkdirSync(path.join(h.root, 'snapshots', '9999', 'fs.partial'), { recursive: true });
    await h.driver.create(ref, {});
    assert.deepEqual(fileContents(path.join(h.root, 'snapshots', '9999', 'fs')), { f: 'f' });
    assert.ok((await h.driver.listOnDisk()).includes(9999));
    await h.driver.remove(9999);
    await h.driver.remove(9999);
    assert.ok(!(await h.driver.listOnDisk()).includes(9999));
  });
});

/** A native driver on a 4 MiB tmpfs, torn down after fn whatever it does. */
async function onTinyTmpfs(fn: (h: Harness) => Promise<void>): Promise<void> {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-native-full-'));
  await mountAll([{ type: 'tmpfs', source: 'tmpfs', options: ['size=4m', 'mode=0700'] }], mnt);
  let h: Harness | undefined;
  try {
    h = await createHarness('native', { root: path.join(mnt, 'root') });
    await fn(h);
  } finally {
    await h?.cleanup();
    await unmountAll(mnt);
    fs.rmdirSync(mnt);
  }
}

describe('native driver on a full disk', () => {
  test('a copy that runs out of space is RESOURCE_EXHAUSTED, names the file, and leaves no fs/', () =>
    // The parent's 3 MiB fits once, its copy cannot.
    onTinyTmpfs(async (h) => {
      const base = await h.create('active');
      fs.writeFileSync(path.join(h.root, 'snapshots', String(base.id), 'fs', 'big'), Buffer.alloc(3 << 20, 7));
      const c = await h.commit(base);
      await assert.rejects(
        h.driver.create({ id: 2, kind: 'active', parents: [c.id] }, {}),
        (e: NodeJS.ErrnoException) => {
          assert.equal(e.code, 'ENOSPC');
          assert.match(e.message, /No space left on device/);
          assert.match(e.message, /big/);
          assert.equal(toStrataError(e, 'prepare').code, 'ResourceExhausted');
          return true;
        },
      );
      assert.ok(!fs.existsSync(path.join(h.root, 'snapshots', '2', 'fs')), 'no complete-looking tree is left');
      // The parent is untouched and the failed one's directory goes with remove, as the reclaimer does.
      assert.equal(fs.readFileSync(path.join(h.root, 'snapshots', String(c.id), 'fs', 'big')).length, 3 << 20);
      await h.driver.remove(2);
      assert.deepEqual(await h.driver.listOnDisk(), [c.id]);
    }));

  test('so is applying layer deltas for a tree: it names the snapshot, leaves no fs/, the layers untouched', () =>
    // The base (1 MiB) and its delta (1.5 MiB) fit, a container's copy of both cannot.
    onTinyTmpfs(async (h) => {
      const base = await h.create('active');
      fs.writeFileSync(path.join(h.root, 'snapshots', String(base.id), 'fs', 'base'), Buffer.alloc(1 << 20, 1));
      const c = await h.commit(base);
      const d = { id: 2, kind: 'active' as const, parents: [c.id] };
      await h.driver.create(d, { applyOnly: true });
      const t = await h.driver.openApplyTarget(d);
      const layer = new TarBuilder().file('big', Buffer.alloc(1536 << 10, 2)).build();
      await applyLayer({ layer: Readable.from([layer]), root: t.dir, whiteouts: t.whiteouts, lowerDirs: t.lowerDirs, sync: 'none' });
      const c2 = await h.commit(d);
      await assert.rejects(
        h.driver.create({ id: 3, kind: 'active', parents: [c2.id, c.id] }, {}),
        (e: NodeJS.ErrnoException) => {
          assert.match(e.message, /stored changes of snapshot 2/);
          assert.equal(toStrataError(e, 'prepare').code, 'ResourceExhausted', e.message);
          return true;
        },
      );
      assert.ok(!fs.existsSync(path.join(h.root, 'snapshots', '3', 'fs')), 'no complete-looking tree is left');
      await h.driver.remove(3);
      assert.equal(fs.statSync(path.join(h.root, 'snapshots', '2', 'fs', 'big')).size, 1536 << 10);
      assert.equal(fs.statSync(path.join(h.root, 'snapshots', '1', 'fs', 'base')).size, 1 << 20);
      assert.deepEqual(await h.driver.listOnDisk(), [1, 2]);
    }));
});

describe('native driver on btrfs: FICLONE reflinks', () => {
  let skip: string | undefined;
  let backend: LoopBackend | undefined;
  let h: Harness | undefined;
  before(async () => {
    skip = await backendMissing('btrfs');
    if (skip) {
      console.log(`# skipping btrfs reflink test: ${skip}`);
      return;
    }
    await cleanupStale();
    backend = await createBtrfs({ quota: false, sizeMiB: 256 });
    h = await createHarness('native', { root: path.join(backend.mountpoint, 'strata') });
  });
  after(async () => {
    if (h) await h.cleanup().catch(() => undefined);
    if (backend) await backend.cleanup();
  });

  test('copies share extents with their parent', async (t) => {
    if (skip || !h) return t.skip(skip);
    const s = await h.driver.status();
    assert.equal(s.backingFs, 'btrfs');
    assert.equal(s.reflink, 'yes');
    const base = await h.create('active');
    const target = await h.driver.openApplyTarget(base);
    const big = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i ^ 0x5a5a5a5a, i);
    fs.writeFileSync(path.join(target.dir, 'big'), big);
    await target.release();
    await run('sync', []);
    const c = await h.commit(base);
    const a = await h.create('active', c);
    const copy = path.join(h.root, 'snapshots', String(a.id), 'fs', 'big');
    assert.ok(fs.readFileSync(copy).equals(big), 'content');
    await run('sync', []);
    const frag = (await run('filefrag', ['-v', copy])).stdout;
    const extents = frag.split('\n').filter((l) => /^\s*\d+:/.test(l));
    assert.ok(extents.length > 0, frag);
    assert.ok(extents.every((l) => /shared/.test(l)), `every extent shared:\n${frag}`);
    const du = (await run('btrfs', ['filesystem', 'du', '-s', '--raw', path.join(h.root, 'snapshots')])).stdout;
    t.diagnostic(du.trim().split('\n').pop() ?? '');
  });
});
