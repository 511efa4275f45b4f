/**
 * The overlay driver against the real kernel, as root: mount shapes, layering with whiteouts written by the
 * kernel and by hand, read-only views, usage, openTree, and the 128/500-layer mounts performed the way
 * containerd performs them (src/core/mount.ts) with their data checked against the one-page limit.
 */
import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { probe } from '../../drivers/overlay/index';
import { MOUNT_DATA_LIMIT, mountData, mountTemp } from '../../src/core/mount';
import { isStrataError } from '../../src/core/errors';
import type { SnapshotRef } from '../../drivers/driver';
import { createHarness, fileContents, opaque, tryWrite, whiteout, type Harness } from './harness';
import * as os from 'node:os';
import { spawnSync } from 'node:child_process';

let skip: string | false = false;

before(async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-ovl-probe-'));
  try {
    const p = await probe({ root, config: {} });
    if (!p.ok) {
      skip = `overlay unavailable here: ${p.reason}`;
      console.log(`# skipping overlay driver tests: ${skip}`);
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

describe('overlay driver', () => {
  let h: Harness;
  before(async () => {
    if (!skip) h = await createHarness('overlay');
  });
  after(async () => {
    if (h) await h.cleanup();
  });

  test('status reports backing fs and features', async (t) => {
    if (skip) return t.skip(skip);
    const s = await h.driver.status();
    assert.equal(s.driver, 'overlay');
    assert.ok(s.backingFs, 'backing fs');
    assert.match(s.userxattr!, /^(yes|no)/);
    assert.match(s.lowerdirPlus!, /supported|no/);
    assert.equal(h.driver.whiteouts, 'overlay');
    assert.equal(h.driver.canRebase, true);
  });

  test('mount shapes follow containerd', async (t) => {
    if (skip) return t.skip(skip);
    const base = await h.create('active');
    let m = await h.driver.mounts(base);
    assert.deepEqual(m, [{ type: 'bind', source: path.join(h.root, 'snapshots', String(base.id), 'fs'), options: ['rw', 'rbind'] }]);
    const c1 = await h.commit(base);
    const v1 = await h.create('view', c1);
    m = await h.driver.mounts(v1);
    assert.deepEqual(m, [{ type: 'bind', source: path.join(h.root, 'snapshots', String(c1.id), 'fs'), options: ['ro', 'rbind'] }]);
    const a2 = await h.create('active', c1);
    m = await h.driver.mounts(a2);
    assert.equal(m.length, 1);
    assert.equal(m[0]!.type, 'overlay');
    const o = m[0]!.options;
    assert.ok(o.includes(`upperdir=${h.root}/snapshots/${a2.id}/fs`), o.join(','));
    assert.ok(o.includes(`workdir=${h.root}/snapshots/${a2.id}/work`), o.join(','));
    assert.ok(o.includes(`lowerdir=${h.root}/snapshots/${c1.id}/fs`), o.join(','));
    const c2 = await h.commit(a2);
    const v2 = await h.create('view', c2);
    m = await h.driver.mounts(v2);
    assert.equal(m[0]!.type, 'overlay');
    assert.ok(m[0]!.options.includes(`lowerdir=${h.root}/snapshots/${c2.id}/fs:${h.root}/snapshots/${c1.id}/fs`), 'nearest first');
    assert.ok(!m[0]!.options.some((x) => x.startsWith('upperdir=')), 'a view has no upper');
    const empty = await h.create('view');
    assert.deepEqual((await h.driver.mounts(empty))[0]!.options, ['ro', 'rbind']);
  });

  test('layering: deletions, modifications, dirs removed and recreated, views read-only', async (t) => {
    if (skip) return t.skip(skip);
    const base = await h.create('active');
    let dir = await h.mount(base);
    fs.writeFileSync(path.join(dir, 'a'), 'a1');
    fs.mkdirSync(path.join(dir, 'd'));
    fs.writeFileSync(path.join(dir, 'd/x'), 'x1');
    fs.mkdirSync(path.join(dir, 'gone'));
    fs.writeFileSync(path.join(dir, 'gone/f'), 'f');
    fs.mkdirSync(path.join(dir, 'redo'));
    fs.writeFileSync(path.join(dir, 'redo/old'), 'old');
    await h.unmount(dir);
    assert.equal(fs.statSync(path.join(h.root, 'snapshots', String(base.id), 'fs')).mode & 0o7777, 0o755, 'root mode 0755');
    const c1 = await h.commit(base);

    const a2 = await h.create('active', c1);
    dir = await h.mount(a2);
    assert.deepEqual(fileContents(dir), { a: 'a1', 'd/x': 'x1', 'gone/f': 'f', 'redo/old': 'old' });
    fs.unlinkSync(path.join(dir, 'a'));
    fs.rmSync(path.join(dir, 'gone'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'd/x'), 'x2');
    fs.writeFileSync(path.join(dir, 'y'), 'y2');
    fs.rmSync(path.join(dir, 'redo'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'redo'));
    fs.writeFileSync(path.join(dir, 'redo/new'), 'new');
    await h.unmount(dir);
    // openTree of the active: its upper over its parents, read-only.
    const activeTree = await h.driver.openTree(a2);
    try {
      assert.deepEqual(fileContents(activeTree.dir), { 'd/x': 'x2', y: 'y2', 'redo/new': 'new' });
      assert.equal(tryWrite(path.join(activeTree.dir, 'q')), 'EROFS');
    } finally {
      await activeTree.release();
    }
    const c2 = await h.commit(a2);
    // The kernel wrote its deletions into the layer as whiteouts (0/0 character devices) and an opaque dir.
    const layer2 = path.join(h.root, 'snapshots', String(c2.id), 'fs');
    const wh = fs.lstatSync(path.join(layer2, 'a'));
    assert.ok(wh.isCharacterDevice() && wh.rdev === 0, 'whiteout for a');

    const v = await h.create('view', c2);
    dir = await h.mount(v);
    assert.deepEqual(fileContents(dir), { 'd/x': 'x2', y: 'y2', 'redo/new': 'new' });
    assert.equal(tryWrite(path.join(dir, 'z')), 'EROFS', 'view over 2 layers is read-only');
    await h.unmount(dir);

    const v1 = await h.create('view', c1);
    dir = await h.mount(v1);
    assert.equal(tryWrite(path.join(dir, 'z')), 'EROFS', 'view over 1 layer (ro bind) is read-only');
    assert.equal(tryWrite(path.join(dir, 'a')), 'EROFS');
    await h.unmount(dir);

    const v0 = await h.create('view');
    dir = await h.mount(v0);
    assert.equal(tryWrite(path.join(dir, 'z')), 'EROFS', 'empty view is read-only');
    await h.unmount(dir);

    // openTree of the committed layer shows the merged tree, read-only, and release() unmounts it.
    const tree = await h.driver.openTree(c2);
    try {
      assert.deepEqual(fileContents(tree.dir), { 'd/x': 'x2', y: 'y2', 'redo/new': 'new' });
      assert.equal(tryWrite(path.join(tree.dir, 'q')), 'EROFS');
    } finally {
      await tree.release();
    }
    assert.ok(!fs.existsSync(tree.dir), 'openTree temp dir removed');
  });

  test('whiteouts and opaque dirs written by hand into an apply target', async (t) => {
    if (skip) return t.skip(skip);
    const base = await h.create('active');
    let target = await h.driver.openApplyTarget(base);
    assert.equal(target.whiteouts, 'overlay');
    assert.deepEqual(target.lowerDirs, []);
    fs.writeFileSync(path.join(target.dir, 'keep'), 'k');
    fs.writeFileSync(path.join(target.dir, 'drop'), 'd');
    fs.mkdirSync(path.join(target.dir, 'op'));
    fs.writeFileSync(path.join(target.dir, 'op/old1'), '1');
    fs.writeFileSync(path.join(target.dir, 'op/old2'), '2');
    await target.release();
    const c1 = await h.commit(base);

    const a2 = await h.create('active', c1);
    target = await h.driver.openApplyTarget(a2);
    assert.deepEqual(target.lowerDirs, [path.join(h.root, 'snapshots', String(c1.id), 'fs')]);
    whiteout(path.join(target.dir, 'drop'));
    fs.mkdirSync(path.join(target.dir, 'op'));
    opaque(path.join(target.dir, 'op'));
    fs.writeFileSync(path.join(target.dir, 'op/new'), 'n');
    await target.release();
    const c2 = await h.commit(a2);

    const v = await h.create('view', c2);
    const dir = await h.mount(v);
    assert.deepEqual(fileContents(dir), { keep: 'k', 'op/new': 'n' });
    await h.unmount(dir);
  });

  test('usage walks the layer: blocks and inodes, hardlinks once', async (t) => {
    if (skip) return t.skip(skip);
    const base = await h.create('active');
    const target = await h.driver.openApplyTarget(base);
    const data = Buffer.alloc(64 * 1024, 7);
    fs.writeFileSync(path.join(target.dir, 'f1'), data);
    fs.writeFileSync(path.join(target.dir, 'f2'), data);
    fs.linkSync(path.join(target.dir, 'f1'), path.join(target.dir, 'f1-link'));
    fs.mkdirSync(path.join(target.dir, 'sub'));
    const u = await h.driver.usage(base);
    assert.equal(u.method, 'walk');
    assert.equal(u.inodes, 4, 'root, f1 (2 names), f2, sub');
    assert.ok(u.size >= 2 * data.length && u.size < 2 * data.length + 64 * 1024, `size ${u.size}`);
  });

  test('a size limit is refused clearly where project quotas are missing', async (t) => {
    if (skip) return t.skip(skip);
    const s = await h.driver.status();
    if (!s.quota!.startsWith('none')) return t.skip(`quota available here (${s.quota}); see quota.test.ts`);
    await assert.rejects(h.create('active', undefined, 1 << 20), (e: unknown) => isStrataError(e, 'FailedPrecondition') && /size limit/.test((e as Error).message));
  });

  test('in a user namespace the driver mounts with userxattr and layering still works', async (t) => {
    if (skip) return t.skip(skip);
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-drv-userns-'));
    try {
      const r = spawnSync('unshare', ['-U', '-r', '-m', process.execPath, path.join(__dirname, 'userns-child.js'), root], { encoding: 'utf8' });
      if (r.error || (r.status !== 0 && /unshare/.test(r.stderr) && /Operation not permitted|Invalid argument/.test(r.stderr))) {
        return t.skip(`cannot create a user namespace here: ${r.error?.message ?? r.stderr.trim()}`);
      }
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { userxattr: string; options: string[]; files: Record<string, string>; write: string };
      assert.match(out.userxattr, /^yes/);
      assert.ok(out.options.includes('userxattr'), out.options.join(','));
      assert.deepEqual(out.files, { 'd/new': 'n' });
      assert.equal(out.write, 'EROFS');
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  test('remove and listOnDisk', async (t) => {
    if (skip) return t.skip(skip);
    const a = await h.create('active');
    assert.ok((await h.driver.listOnDisk()).includes(a.id));
    await h.driver.remove(a.id);
    await h.driver.remove(a.id);
    assert.ok(!(await h.driver.listOnDisk()).includes(a.id));
  });
});

/** Builds n committed layers by writing straight into each layer; layer i adds l/<i> and rewrites `top`, and
 * every 10th layer whites out l/<i-5>. Returns the chain's top and the flattened files expected. */
async function buildChain(h: Harness, n: number): Promise<{ top: SnapshotRef; expected: Record<string, string> }> {
  const expected: Record<string, string> = {};
  let parent: SnapshotRef | undefined;
  for (let i = 1; i <= n; i++) {
    const a = await h.create('active', parent);
    const target = await h.driver.openApplyTarget(a);
    fs.mkdirSync(path.join(target.dir, 'l'));
    fs.writeFileSync(path.join(target.dir, 'l', String(i)), `layer ${i}`);
    fs.writeFileSync(path.join(target.dir, 'top'), String(i));
    expected[`l/${i}`] = `layer ${i}`;
    expected.top = String(i);
    if (i % 10 === 0) {
      whiteout(path.join(target.dir, 'l', String(i - 5)));
      delete expected[`l/${i - 5}`];
    }
    await target.release();
    parent = await h.commit(a);
  }
  return { top: parent!, expected };
}

for (const { layers, firstId } of [
  { layers: 128, firstId: 1 },
  { layers: 500, firstId: 1 },
  // Six-digit ids: the plain `<id>/fs` names no longer fit a page even compacted; the short aliases must.
  { layers: 500, firstId: 100_000 },
]) {
  describe(`overlay: ${layers} stacked layers (ids from ${firstId})`, () => {
    let h: Harness;
    let top: SnapshotRef;
    let expected: Record<string, string>;
    before(async () => {
      if (skip) return;
      h = await createHarness('overlay', { firstId });
      ({ top, expected } = await buildChain(h, layers));
    });
    after(async () => {
      if (h) await h.cleanup();
    });

    test('an active on top mounts containerd-style within one page and sees the flattened tree', async (t) => {
      if (skip) return t.skip(skip);
      const a = await h.create('active', top);
      const mounts = await h.driver.mounts(a);
      const { data, chdir } = mountData(mounts[0]!);
      const size = Buffer.byteLength(data);
      t.diagnostic(`mount data ${size} bytes (limit ${MOUNT_DATA_LIMIT}), compacted from ${chdir || '(not compacted)'}`);
      assert.ok(size < MOUNT_DATA_LIMIT, `mount data ${size} bytes`);
      const dir = await h.mount(a);
      assert.deepEqual(fileContents(dir), expected);
      fs.writeFileSync(path.join(dir, 'written'), 'w');
      await h.unmount(dir);
      assert.equal(fs.readFileSync(path.join(h.root, 'snapshots', String(a.id), 'fs', 'written'), 'utf8'), 'w');
    });

    test('a view on top is read-only and sees the same tree', async (t) => {
      if (skip) return t.skip(skip);
      const v = await h.create('view', top);
      const mounts = await h.driver.mounts(v);
      assert.ok(Buffer.byteLength(mountData(mounts[0]!).data) < MOUNT_DATA_LIMIT);
      const m = await mountTemp(mounts, path.join(h.root, 'test-mnt'), 'v-');
      try {
        assert.deepEqual(fileContents(m.dir), expected);
        assert.equal(tryWrite(path.join(m.dir, 'x')), 'EROFS');
      } finally {
        await m.release();
      }
    });
  });
}
