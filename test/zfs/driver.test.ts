/**
 * The ZFS driver against a real pool on an image file (zfs-fuse here, so datasets are FUSE mounts made by the
 * daemon through the mountpoint property). Kept short: every zfs command is a round trip to the daemon.
 */
import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backendMissing, BACKEND_BASE, cleanupStale, createZfsPool, uniqueName, type ZfsBackend } from '../helpers/backends';
import { create, probe } from '../../drivers/zfs';
import type { Driver, SnapshotRef } from '../../drivers/driver';
import { mountTemp } from '../../src/core/mount';
import { isStrataError } from '../../src/core/errors';
import { DatasetUsedCache } from '../../drivers/zfs/usage';

const MiB = 1024 * 1024;
const active = (id: number, ...parents: number[]): SnapshotRef => ({ id, kind: 'active', parents });
const committed = (id: number, ...parents: number[]): SnapshotRef => ({ id, kind: 'committed', parents });
const view = (id: number, ...parents: number[]): SnapshotRef => ({ id, kind: 'view', parents });

/** Node 20's libuv has no name for EDQUOT: it reports code 'UNKNOWN' with errno -122. */
function errName(e: NodeJS.ErrnoException): string {
  return e.code === 'UNKNOWN' && e.errno === -122 ? 'EDQUOT' : (e.code ?? '');
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

function datasets(parent: string): string[] {
  return execFileSync('zfs', ['list', '-H', '-o', 'name', '-t', 'filesystem', '-r', parent], { encoding: 'utf8' })
    .split('\n')
    .filter((n) => n && n !== parent);
}

describe('zfs driver', () => {
  let pool: ZfsBackend | undefined;
  let d: Driver;
  let root = '';
  let ds = '';

  before(async (t) => {
    await cleanupStale();
    const why = await backendMissing('zfs');
    if (why) return (t as unknown as { skip(m: string): void }).skip(why);
    pool = await createZfsPool({ sizeMiB: 256 });
    ds = pool.dataset;
    root = path.join(BACKEND_BASE, uniqueName('zfsroot'));
    const opts = { root, config: { dataset: ds } };
    assert.deepEqual(await probe(opts), { ok: true });
    d = create(opts);
    await d.init();
  });

  after(async () => {
    await d?.close();
    // Destroying the pool unmounts every dataset; only then may the root directory go.
    await pool?.cleanup();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  test('probe explains what is missing', async () => {
    assert.match((await probe({ root: '/tmp/x', config: {} })).reason ?? '', /dataset = "pool\/strata"/);
    const r = await probe({ root: '/tmp/x', config: { dataset: 'stratat_no_such_pool/x' } });
    assert.equal(r.ok, false);
    assert.match(r.reason ?? '', /pool/);
  });

  test('prepare, commit, clone: copy-on-write, read-only committed layers and views', async (t) => {
    if (!pool) return t.skip('no zfs');
    await d.create(active(1), {});
    const f1 = path.join(root, 'snapshots/1/fs');
    assert.equal(fs.statSync(f1).mode & 0o777, 0o755);
    fs.writeFileSync(path.join(f1, 'a'), 'parent');
    fs.mkdirSync(path.join(f1, 'dir'));
    fs.writeFileSync(path.join(f1, 'dir/b'), 'b');
    await d.commit(committed(1));
    await d.commit(committed(1)); // idempotent after a crash between driver and metadata
    expectErrno(() => fs.writeFileSync(path.join(f1, 'new'), 'x'), ['EROFS']);

    await d.create(active(2, 1), {});
    const target = await d.openApplyTarget(active(2, 1));
    assert.equal(target.whiteouts, 'delete');
    fs.writeFileSync(path.join(target.dir, 'a'), 'child');
    fs.rmSync(path.join(target.dir, 'dir'), { recursive: true });
    await target.release();
    assert.equal(fs.readFileSync(path.join(f1, 'a'), 'utf8'), 'parent');
    assert.equal(fs.readFileSync(path.join(f1, 'dir/b'), 'utf8'), 'b');

    const m = await mountTemp(await d.mounts(active(2, 1)), path.join(root, 'tmp'));
    try {
      assert.equal(fs.readFileSync(path.join(m.dir, 'a'), 'utf8'), 'child');
    } finally {
      await m.release();
    }

    await d.create(view(3, 1), {});
    const vm = await d.mounts(view(3, 1));
    assert.deepEqual(vm, [{ type: 'bind', source: path.join(root, 'snapshots/3/fs'), options: ['rbind', 'ro'] }]);
    expectErrno(() => fs.writeFileSync(path.join(root, 'snapshots/3/fs/x'), 'x'), ['EROFS']);
    const v = await mountTemp(vm, path.join(root, 'tmp'));
    try {
      assert.equal(fs.readFileSync(path.join(v.dir, 'a'), 'utf8'), 'parent');
      expectErrno(() => fs.writeFileSync(path.join(v.dir, 'x'), 'x'), ['EROFS']);
    } finally {
      await v.release();
    }
  });

  test('usage from the dataset, size limit by quota', async (t) => {
    if (!pool) return t.skip('no zfs');
    await d.create(active(4, 1), { sizeLimit: 2 * MiB });
    const f4 = path.join(root, 'snapshots/4/fs');
    fs.writeFileSync(path.join(f4, 'one'), Buffer.alloc(MiB, 1));
    execFileSync('sync');
    const u = await d.usage(active(4, 1));
    assert.equal(u.method, 'dataset');
    // zfs-fuse reports the figure of the last synced txg, which may trail the write a little.
    assert.ok(u.size >= 0.9 * MiB && u.size < 2 * MiB, `size ${u.size}`);
    expectErrno(() => {
      const fd = fs.openSync(path.join(f4, 'big'), 'w');
      try {
        for (let i = 0; i < 16; i++) fs.writeSync(fd, Buffer.alloc(MiB, 2));
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }, ['EDQUOT', 'ENOSPC']);
  });

  test('usage cache: no zfs process while the dataset is unchanged, re-read once it changes', async (t) => {
    if (!pool) return t.skip('no zfs');
    await d.create(active(5, 1), {});
    const f5 = path.join(root, 'snapshots/5/fs');
    const cache = new DatasetUsedCache(ds);
    const first = await cache.used(`${ds}/5`, f5);
    assert.equal(cache.listings, 1);
    assert.equal(await cache.used(`${ds}/5`, f5), first);
    assert.equal(cache.listings, 1, 'an unchanged dataset is answered from the cache');
    fs.writeFileSync(path.join(f5, 'w'), Buffer.alloc(MiB, 3));
    // Taking a snapshot makes zfs sync the transaction group, so `used` and statfs move now (zfs-fuse publishes a
    // dataset without a quota only every ~30 s otherwise).
    execFileSync('zfs', ['snapshot', `${ds}/5@txg`]);
    let now = first;
    for (let i = 0; i < 100 && now < first + 0.9 * MiB; i++) {
      await new Promise((r) => setTimeout(r, 100));
      now = await cache.used(`${ds}/5`, f5);
    }
    assert.ok(now >= first + 0.9 * MiB, `used ${first} -> ${now} after writing 1 MiB`);
    assert.ok(cache.listings >= 2, 'a changed dataset is listed again');
    const n = cache.listings;
    assert.equal(await cache.used(`${ds}/5`, f5), now);
    assert.equal(cache.listings, n);
    await assert.rejects(cache.used(`${ds}/999`, path.join(root, 'snapshots/999/fs')), (e) => isStrataError(e, 'NotFound'));
    await d.remove(5);
  });

  test('remove: a parent with live clones is parked, then destroyed with its last clone; idempotent', async (t) => {
    if (!pool) return t.skip('no zfs');
    assert.deepEqual(await d.listOnDisk(), [1, 2, 3, 4]);
    await d.remove(1); // clones 2, 3 and 4 depend on 1@committed
    assert.ok(datasets(ds).includes(`${ds}/1`), 'parked, not destroyed');
    assert.equal(fs.existsSync(path.join(root, 'snapshots/1')), false);
    assert.deepEqual(await d.listOnDisk(), [2, 3, 4]);
    assert.equal(fs.readFileSync(path.join(root, 'snapshots/3/fs/a'), 'utf8'), 'parent');
    await d.remove(1); // again: still parked, no error

    await d.remove(2);
    await d.remove(3);
    assert.ok(datasets(ds).includes(`${ds}/1`));
    await d.remove(4); // the last clone: 1 goes with it
    assert.deepEqual(datasets(ds), []);
    assert.deepEqual(await d.listOnDisk(), []);
    await d.remove(4);
    await d.remove(999);
  });

  test('crash leftovers: a half-made dataset is replaced, a parked orphan is listed for Cleanup', async (t) => {
    if (!pool) return t.skip('no zfs');
    execFileSync('zfs', ['create', '-o', 'mountpoint=none', `${ds}/10`]);
    await d.create(active(10), {});
    assert.deepEqual(fs.readdirSync(path.join(root, 'snapshots/10/fs')), []);
    await d.commit(committed(10));
    await d.create(active(11, 10), {});
    await d.remove(10);
    // Simulate a crash between destroying 11 and destroying its parked parent.
    // -f and a few retries: zfs-fuse calls a fresh mount busy for a moment (the driver's destroy retries the same way).
    for (let attempt = 0; ; attempt++) {
      try {
        execFileSync('zfs', ['destroy', '-f', `${ds}/11`], { stdio: ['ignore', 'ignore', 'pipe'] });
        break;
      } catch (e) {
        if (attempt >= 10 || !/busy/.test(String((e as { stderr?: Buffer }).stderr ?? ''))) throw e;
        await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
      }
    }
    assert.deepEqual(await d.listOnDisk(), [10, 11]); // 11: a leftover directory; 10: parked, no clones left
    for (const id of await d.listOnDisk()) await d.remove(id);
    assert.deepEqual(datasets(ds), []);
    assert.deepEqual(await d.listOnDisk(), []);
    await assert.rejects(d.create(active(12, 99), {}), (e: unknown) => isStrataError(e, 'FailedPrecondition'));
    assert.deepEqual(await d.listOnDisk(), []);
    const st = await d.status();
    assert.equal(st['dataset'], ds);
  });

  test('a commit cut off before the metadata update leaves an active that takes writes again', async (t) => {
    if (!pool) return t.skip('no zfs');
    const f = path.join(root, 'snapshots/20/fs');
    await d.create(active(20), {});
    fs.writeFileSync(path.join(f, 'a'), 'a');
    await d.commit(committed(20)); // the daemon dies here: the row stays active
    expectErrno(() => fs.writeFileSync(path.join(f, 'b'), 'b'), ['EROFS']);
    const d2 = create({ root, config: { dataset: ds } }); // the restarted daemon
    await d2.init();
    try {
      assert.equal((await d2.mounts(active(20)))[0]!.source, f);
      fs.writeFileSync(path.join(f, 'b'), 'b');
      await d2.commit(committed(20)); // the retried commit must not keep the stale @committed
      expectErrno(() => fs.writeFileSync(path.join(f, 'c'), 'c'), ['EROFS']);
      await d2.create(active(21, 20), {});
      assert.deepEqual(fs.readdirSync(path.join(root, 'snapshots/21/fs')).sort(), ['a', 'b']);
      // A retried commit with no mounts() in between (writes through a mount that outlived the daemon).
      fs.writeFileSync(path.join(root, 'snapshots/21/fs/c'), 'c');
      await d2.commit(committed(21));
      execFileSync('zfs', ['set', 'readonly=off', `${ds}/21`]);
      fs.writeFileSync(path.join(root, 'snapshots/21/fs/d'), 'd');
      await d2.commit(committed(21));
      await d2.create(active(22, 21), {});
      assert.deepEqual(fs.readdirSync(path.join(root, 'snapshots/22/fs')).sort(), ['a', 'b', 'c', 'd']);
      for (const id of [22, 21, 20]) await d2.remove(id);
      assert.deepEqual(datasets(ds), []);
    } finally {
      await d2.close();
    }
  });
});
