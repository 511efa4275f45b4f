/**
 * The btrfs driver against a real loop-mounted btrfs (quotas on), once with the native ioctls and once with the
 * btrfs program, plus a quota-less filesystem for the walk path and a non-btrfs root for the probe.
 */
import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backendMissing, cleanupStale, createBtrfs, type LoopBackend } from '../helpers/backends';
import { create, probe } from '../../drivers/btrfs';
import type { Driver, SnapshotRef } from '../../drivers/driver';
import { mountTemp } from '../../src/core/mount';
import { isStrataError } from '../../src/core/errors';

const MiB = 1024 * 1024;
const active = (id: number, ...parents: number[]): SnapshotRef => ({ id, kind: 'active', parents });
const committed = (id: number, ...parents: number[]): SnapshotRef => ({ id, kind: 'committed', parents });
const view = (id: number, ...parents: number[]): SnapshotRef => ({ id, kind: 'view', parents });

function writeBytes(file: string, n: number): void {
  fs.writeFileSync(file, Buffer.alloc(n, 7));
}

/** Forces a transaction commit so qgroup figures are current (they lag writes until the next commit). */
function syncFs(dir: string): void {
  execFileSync('btrfs', ['filesystem', 'sync', dir]);
}

/** Node 20's libuv has no name for EDQUOT: it reports code 'UNKNOWN' with errno -122. */
const EDQUOT_ERRNO = -122;

function errName(e: NodeJS.ErrnoException): string {
  return e.code === 'UNKNOWN' && e.errno === EDQUOT_ERRNO ? 'EDQUOT' : (e.code ?? '');
}

function expectErrno(f: () => void, codes: string[]): void {
  try {
    f();
  } catch (e) {
    assert.ok(codes.includes(errName(e as NodeJS.ErrnoException)), `expected ${codes.join('/')}, got ${(e as Error).message}`);
    return;
  }
  assert.fail(`expected ${codes.join('/')}`);
}

async function setup(t: { skip(msg: string): void }): Promise<LoopBackend | undefined> {
  const why = await backendMissing('btrfs');
  if (why) {
    t.skip(why);
    return undefined;
  }
  return createBtrfs({ sizeMiB: 512 });
}

before(async () => {
  await cleanupStale();
});

for (const ops of ['ioctl', 'cli'] as const) {
  describe(`btrfs driver (${ops})`, () => {
    let fsb: LoopBackend | undefined;
    let d: Driver;
    let root = '';

    before(async (t) => {
      fsb = await setup(t as unknown as { skip(msg: string): void });
      if (!fsb) return;
      root = path.join(fsb.mountpoint, 'strata');
      const opts = { root, config: { ops } };
      assert.deepEqual(await probe(opts), { ok: true });
      d = create(opts);
      await d.init();
    });
    after(async () => {
      await d?.close();
      await fsb?.cleanup();
    });

    test('prepare, commit, child: copy-on-write and read-only layers', async (t) => {
      if (!fsb) return t.skip('no btrfs');
      await d.create(active(1), {});
      const f1 = path.join(root, 'snapshots/1/fs');
      assert.equal(fs.statSync(f1).mode & 0o777, 0o755);
      fs.writeFileSync(path.join(f1, 'a'), 'parent');
      fs.mkdirSync(path.join(f1, 'dir'));
      fs.writeFileSync(path.join(f1, 'dir/b'), 'b');
      await d.commit(committed(1));
      await d.commit(committed(1)); // idempotent
      expectErrno(() => fs.writeFileSync(path.join(f1, 'new'), 'x'), ['EROFS']);

      await d.create(active(2, 1), {});
      const target = await d.openApplyTarget(active(2, 1));
      assert.equal(target.whiteouts, 'delete');
      const f2 = target.dir;
      assert.equal(fs.readFileSync(path.join(f2, 'a'), 'utf8'), 'parent');
      fs.writeFileSync(path.join(f2, 'a'), 'child');
      fs.rmSync(path.join(f2, 'dir'), { recursive: true });
      await target.release();
      assert.equal(fs.readFileSync(path.join(f1, 'a'), 'utf8'), 'parent');
      assert.equal(fs.readFileSync(path.join(f1, 'dir/b'), 'utf8'), 'b');

      const mounts = await d.mounts(active(2, 1));
      assert.deepEqual(mounts, [{ type: 'bind', source: f2, options: ['rbind', 'rw'] }]);
      const m = await mountTemp(mounts, path.join(root, 'tmp'));
      try {
        assert.equal(fs.readFileSync(path.join(m.dir, 'a'), 'utf8'), 'child');
        fs.writeFileSync(path.join(m.dir, 'through-mount'), 'y');
      } finally {
        await m.release();
      }
      assert.equal(fs.readFileSync(path.join(f2, 'through-mount'), 'utf8'), 'y');
    });

    test('views are read-only snapshots and read-only mounts (EROFS)', async (t) => {
      if (!fsb) return t.skip('no btrfs');
      await d.create(view(3, 1), {});
      const f3 = path.join(root, 'snapshots/3/fs');
      assert.equal(fs.readFileSync(path.join(f3, 'a'), 'utf8'), 'parent');
      expectErrno(() => fs.writeFileSync(path.join(f3, 'x'), 'x'), ['EROFS']);
      const mounts = await d.mounts(view(3, 1));
      assert.deepEqual(mounts[0]?.options, ['rbind', 'ro']);
      const m = await mountTemp(mounts, path.join(root, 'tmp'));
      try {
        expectErrno(() => fs.writeFileSync(path.join(m.dir, 'x'), 'x'), ['EROFS']);
      } finally {
        await m.release();
      }
      // An empty view (no parent) is read-only too.
      await d.create(view(4), {});
      expectErrno(() => fs.mkdirSync(path.join(root, 'snapshots/4/fs/x')), ['EROFS']);
    });

    test('usage comes from the qgroup and counts only the layer', async (t) => {
      if (!fsb) return t.skip('no btrfs');
      await d.create(active(5, 1), {});
      writeBytes(path.join(root, 'snapshots/5/fs/blob'), 4 * MiB);
      syncFs(root);
      const u = await d.usage(active(5, 1));
      assert.equal(u.method, 'qgroup');
      assert.ok(u.size >= 4 * MiB && u.size < 5 * MiB, `size ${u.size}`);
      // A committed layer keeps its figure after a child shares all its extents (exclusive would drop to ~0).
      await d.commit(committed(5, 1));
      await d.create(active(8, 5), {});
      syncFs(root);
      const c = await d.usage(committed(5, 1));
      assert.equal(c.method, 'qgroup');
      assert.ok(c.size >= 4 * MiB && c.size < 5 * MiB, `committed size ${c.size}`);
      await d.remove(8);
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < 100; i++) await d.usage(active(5, 1));
      const perCall = Number(process.hrtime.bigint() - t0) / 1e6 / 100;
      t.diagnostic(`qgroup usage: ${perCall.toFixed(3)} ms per call`);
    });

    test('a size limit fails writes past it with EDQUOT', async (t) => {
      if (!fsb) return t.skip('no btrfs');
      await d.create(active(6, 1), { sizeLimit: 2 * MiB });
      const f6 = path.join(root, 'snapshots/6/fs');
      writeBytes(path.join(f6, 'small'), MiB); // under the limit
      expectErrno(() => {
        for (let i = 0; i < 8; i++) {
          writeBytes(path.join(f6, `big${i}`), MiB);
          syncFs(root); // the qgroup counts at commit; without syncs the overrun shows a little later
        }
      }, ['EDQUOT', 'ENOSPC']);
      // The parent's shared bytes do not count against the child's limit: a limit smaller than the parent works.
      await d.create(active(7, 5), { sizeLimit: MiB });
      writeBytes(path.join(root, 'snapshots/7/fs/ok'), 256 * 1024);
    });

    test('remove: parent with a live child, nested subvolumes, idempotence, listOnDisk', async (t) => {
      if (!fsb) return t.skip('no btrfs');
      const before = await d.listOnDisk();
      assert.deepEqual(before, [1, 2, 3, 4, 5, 6, 7]);
      // 1 is the parent of 2 (active), 3 (view), 5 and 7: its subvolume goes, theirs stay whole.
      await d.remove(1);
      assert.equal(fs.readFileSync(path.join(root, 'snapshots/3/fs/a'), 'utf8'), 'parent');
      assert.equal(fs.readFileSync(path.join(root, 'snapshots/2/fs/a'), 'utf8'), 'child');
      await d.remove(1);
      await d.remove(999);

      // A container that made a subvolume inside its layer, then the layer was committed.
      const f2 = path.join(root, 'snapshots/2/fs');
      execFileSync('btrfs', ['subvolume', 'create', path.join(f2, 'inner')]);
      execFileSync('btrfs', ['subvolume', 'create', path.join(f2, 'inner/deeper')]);
      await d.commit(committed(2, 1));
      await d.remove(2);
      assert.equal(fs.existsSync(path.join(root, 'snapshots/2')), false);

      for (const id of await d.listOnDisk()) await d.remove(id);
      assert.deepEqual(await d.listOnDisk(), []);
      // A half-made leftover (crash between mkdir and snapshot) is listed and removable.
      fs.mkdirSync(path.join(root, 'snapshots/42'));
      assert.deepEqual(await d.listOnDisk(), [42]);
      await d.remove(42);
      assert.deepEqual(await d.listOnDisk(), []);
    });

    test('create over a leftover with the same id starts over', async (t) => {
      if (!fsb) return t.skip('no btrfs');
      fs.mkdirSync(path.join(root, 'snapshots/50/fs'), { recursive: true });
      fs.writeFileSync(path.join(root, 'snapshots/50/fs/stale'), 'x');
      await d.create(active(50), {});
      assert.deepEqual(fs.readdirSync(path.join(root, 'snapshots/50/fs')), []);
      await d.remove(50);
    });

    test('a commit cut off before the metadata update leaves an active that takes writes again', async (t) => {
      if (!fsb) return t.skip('no btrfs');
      const f = path.join(root, 'snapshots/60/fs');
      await d.create(active(60), {});
      fs.writeFileSync(path.join(f, 'a'), 'a');
      await d.commit(committed(60)); // the daemon dies here: the row stays active
      expectErrno(() => fs.writeFileSync(path.join(f, 'b'), 'b'), ['EROFS']);
      const d2 = create({ root, config: { ops } }); // the restarted daemon
      await d2.init();
      try {
        assert.equal((await d2.mounts(active(60)))[0]!.source, f);
        fs.writeFileSync(path.join(f, 'b'), 'b');
        await d2.commit(committed(60)); // the retried commit takes the later write with it
        expectErrno(() => fs.writeFileSync(path.join(f, 'c'), 'c'), ['EROFS']);
        assert.deepEqual(fs.readdirSync(f).sort(), ['a', 'b']);
        await d2.remove(60);
      } finally {
        await d2.close();
      }
    });
  });
}

describe('btrfs driver without quotas', () => {
  let fsb: LoopBackend | undefined;
  let d: Driver;
  let root = '';
  before(async (t) => {
    const why = await backendMissing('btrfs');
    if (why) return (t as unknown as { skip(m: string): void }).skip(why);
    fsb = await createBtrfs({ sizeMiB: 256, quota: false });
    root = path.join(fsb.mountpoint, 'strata');
    d = create({ root, config: {} });
    await d.init();
  });
  after(async () => {
    await d?.close();
    await fsb?.cleanup();
  });

  test('usage walks and counts the layer, size limits are refused clearly', async (t) => {
    if (!fsb) return t.skip('no btrfs');
    await d.create(active(1), {});
    writeBytes(path.join(root, 'snapshots/1/fs/base'), 3 * MiB);
    await d.commit(committed(1));
    await d.create(active(2, 1), {});
    writeBytes(path.join(root, 'snapshots/2/fs/mine'), MiB);
    const u = await d.usage(active(2, 1));
    assert.equal(u.method, 'walk');
    assert.ok(u.size >= MiB && u.size < 2 * MiB, `size ${u.size}`);
    assert.equal(u.inodes, 1);
    await assert.rejects(d.create(active(3, 1), { sizeLimit: MiB }), (e: unknown) => isStrataError(e, 'FailedPrecondition') && /quota/.test((e as Error).message));
    assert.deepEqual(await d.listOnDisk(), [1, 2]);
    assert.equal((await d.status())['quota'], 'disabled');
  });
});

test('probe refuses a root that is not on btrfs', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-btrfs-probe-'));
  try {
    if (fs.statfsSync(dir).type === 0x9123683e) return;
    const r = await probe({ root: path.join(dir, 'root'), config: {} });
    assert.equal(r.ok, false);
    assert.match(r.reason ?? '', /not btrfs/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
