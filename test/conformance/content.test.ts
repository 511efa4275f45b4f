/**
 * Conformance, part 3: what a container sees through layers. Every case writes layers through real mounts and
 * compares each committed snapshot with the tree the same operations give on a plain directory.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { assertTreesEqual, snapshotTree } from '../helpers/tree';
import { op, type FsOp } from './fsops';
import { ckey, driverSuite, type DriverSuite } from './harness';

/**
 * Depth of the stacked-layers test. 128 by default; the dm VM lane (scripts/dm-lane.sh) sets STRATA_TEST_LAYERS=32
 * because under software emulation each devmapper layer costs ~2.7 s (dmsetup runs and mounts),
 * and 32 layers still cover two full cycles of the pattern below (dirs made every 8, removed every 16, files
 * deleted every 10).
 */
const LAYERS = Number(process.env.STRATA_TEST_LAYERS ?? 128);

/** Commits each layer on the previous one, checks every prefix, removes the chain; returns nothing. */
async function checkLayers(s: DriverSuite, layers: FsOp[][], what: string): Promise<void> {
  const names: string[] = [];
  try {
    let parent = '';
    for (const l of layers) {
      parent = await s.layer(parent, l);
      names.push(parent);
    }
    for (let i = 0; i < names.length; i++) {
      assertTreesEqual(await s.treeOf(names[i]), s.expected(layers.slice(0, i + 1)), `${what}: layer ${i + 1}`);
    }
    // A container on top sees the same as a view.
    const top = ckey('container');
    await s.client.prepare(top, parent);
    names.push(top);
    assertTreesEqual(await s.treeOf(top), s.expected(layers), `${what}: active on top`);
  } finally {
    for (const n of names.reverse()) await s.client.remove(n).catch(() => undefined);
  }
}

driverSuite('conformance: content', (s) => {
  s.it('new snapshots have a 0755 root owned by root', async () => {
    const c = s.client;
    const key = ckey('extract');
    await c.prepare(key, '');
    await s.withMounts(await c.mounts(key), (dir) => {
      const st = fs.statSync(dir);
      assert.equal((st.mode & 0o7777).toString(8), '755');
      assert.equal(st.uid, 0);
      assert.equal(st.gid, 0);
      assert.deepEqual(fs.readdirSync(dir), [], 'a new snapshot is empty');
    });
    await c.remove(key);
  });

  s.it('file updates across layers (content, file → dir → file)', () =>
    checkLayers(
      s,
      [
        [op.file('foo', 'first'), op.dir('d'), op.file('d/bar', 'bar'), op.file('keep', 'keep', 0o640)],
        [op.file('foo', 'second, longer than the first'), op.append('d/bar', '+more')],
        [op.rm('foo'), op.dir('foo'), op.file('foo/inner', 'inner')],
        [op.rm('foo'), op.file('foo', 'a file again'), op.chmod('keep', 0o600)],
      ],
      'file updates',
    ));

  s.it('a directory removed and recreated in an upper layer hides the lower content', () =>
    checkLayers(
      s,
      [
        [op.dir('a'), op.file('a/x', 'x'), op.dir('a/sub'), op.file('a/sub/y', 'y'), op.dir('b'), op.file('b/kept', 'k')],
        [op.rm('a'), op.dir('a', 0o711), op.file('a/z', 'z')],
        [op.file('a/after', 'after')],
      ],
      'remove and recreate a directory',
    ));

  s.it('chown across layers', () =>
    checkLayers(
      s,
      [
        [op.dir('d'), op.file('d/f', 'f'), op.file('g', 'g'), op.symlink('g', 'lnk'), op.dir('e')],
        [op.chown('d', 1000, 1000), op.chown('d/f', 1001, 1002), op.chown('g', 0, 1000), op.chown('lnk', 65534, 65534)],
        [op.file('e/new', 'n'), op.chown('e/new', 1000, 100), op.chown('e', 33, 33)],
      ],
      'chown',
    ));

  s.it('directory permissions survive commits (copy-up keeps modes)', () =>
    checkLayers(
      s,
      [
        [op.dir('dir1', 0o700), op.dir('dir2', 0o750), op.dir('dir3', 0o1777), op.dir('dir1/deep', 0o705)],
        [op.file('dir1/deep/f', 'f'), op.dir('dir4', 0o2755)],
        [op.chmod('dir2', 0o777), op.file('dir2/x', 'x'), op.file('dir4/y', 'y')],
      ],
      'directory permissions',
    ));

  s.it('files deleted in a child stay deleted in its children', () =>
    checkLayers(
      s,
      [
        [op.file('a', 'a'), op.file('b', 'b'), op.dir('c'), op.file('c/d', 'd'), op.dir('e'), op.file('e/f', 'f')],
        [op.rm('a'), op.rm('c'), op.rm('e/f')],
        [op.file('new', 'n')],
        [op.file('b', 'b changed')],
      ],
      'deletions',
    ));

  s.it('moves of files and directories from lower layers', () =>
    checkLayers(
      s,
      [
        [op.dir('d1'), op.file('d1/f', 'content'), op.file('top', 'top'), op.dir('d2'), op.file('d2/g', 'g')],
        [op.rename('d1/f', 'moved'), op.rename('top', 'd1/top2'), op.rename('d2', 'd3')],
        [op.file('d1/f', 'a new f where the old one was')],
      ],
      'moves from lower layers',
    ));

  s.it('renames: overwrite by rename, rename over a lower file, directory renames', () =>
    checkLayers(
      s,
      [
        [op.dir('dir1', 0o700), op.dir('somefiles', 0o700), op.file('somefiles/f1', 'was here first!'), op.file('somefiles/f2', 'nothing interesting')],
        [
          op.rename('dir1', 'dir2'),
          op.file('somefiles/f1-overwrite', 'new content 1'),
          op.rename('somefiles/f1-overwrite', 'somefiles/f1'),
          op.rename('somefiles/f2', 'somefiles/f3'),
        ],
      ],
      'renames',
    ));

  s.it('symlinks, hardlinks, xattrs and special modes are kept', async (t) => {
    const xattrs = await s.supportsXattrs();
    if (!xattrs) t.diagnostic(`${s.entry.label}: the backing filesystem has no xattrs; checking the rest`);
    const keep = (o: FsOp): boolean => xattrs || !o.describe.startsWith('xattr ');
    await checkLayers(
      s,
      [
        [
          op.file('bin', '#!/bin/sh\n', 0o4755),
          op.file('sgid', 'g', 0o2711),
          op.file('data', 'shared'),
          op.link('data', 'data-link'),
          op.symlink('/absolute/target', 'abs'),
          op.symlink('../rel', 'rel'),
          op.dir('x'),
          op.file('x/attr', 'a'),
          op.xattr('x/attr', 'user.strata.test', 'value'),
          op.xattr('x', 'user.dir', 'dv'),
        ].filter(keep),
        [op.file('unrelated', 'u')],
      ],
      'links and attributes',
    );
  });

  s.it('views are read-only: writes fail with EROFS', async () => {
    const c = s.client;
    const base = await s.layer('', [op.file('f', 'f'), op.dir('d')]);
    const view = ckey('view');
    const mounts = await c.view(view, base);
    try {
      await s.withMounts(mounts, (dir) => {
        const attempts: Array<[string, () => void]> = [
          ['create a file', () => fs.writeFileSync(path.join(dir, 'new'), 'x')],
          ['write a lower file', () => fs.writeFileSync(path.join(dir, 'f'), 'x')],
          ['mkdir', () => fs.mkdirSync(path.join(dir, 'd', 'sub'))],
          ['unlink', () => fs.unlinkSync(path.join(dir, 'f'))],
          ['chmod', () => fs.chmodSync(path.join(dir, 'f'), 0o600)],
        ];
        for (const [what, fn] of attempts) assert.throws(fn, (e: NodeJS.ErrnoException) => e.code === 'EROFS', `${what} in a view`);
      });
      // An empty view (no parent) is read-only too.
      const empty = ckey('view');
      await s.withMounts(await c.view(empty, ''), (dir) =>
        assert.throws(() => fs.writeFileSync(path.join(dir, 'x'), 'x'), (e: NodeJS.ErrnoException) => e.code === 'EROFS'),
      );
      await c.remove(empty);
      assertTreesEqual(await s.treeOf(base), s.expected([[op.file('f', 'f'), op.dir('d')]]), 'the layer under the view');
    } finally {
      await c.remove(view);
      await c.remove(base);
    }
  });

  s.it(`${LAYERS} stacked layers equal the flattened tree`, async () => {
    const c = s.client;
    const layers: FsOp[][] = [];
    for (let i = 0; i < LAYERS; i++) {
      const l: FsOp[] = [op.file(`f${i}`, `layer ${i}`), op.file('common', `written by layer ${i}`)];
      if (i % 8 === 0) l.push(op.dir(`d${i}`), op.file(`d${i}/inner`, String(i)));
      if (i % 10 === 5) l.push(op.rm(`f${i - 5}`));
      if (i % 16 === 15) l.push(op.rm(`d${i - 15}`));
      layers.push(l);
    }
    const names: string[] = [];
    try {
      let parent = '';
      for (const l of layers) {
        parent = await s.layer(parent, l);
        names.push(parent);
      }
      const want = s.expected(layers);
      assertTreesEqual(await s.treeOf(parent), want, `a view of layer ${LAYERS}`);
      const top = ckey('container');
      const mounts = await c.prepare(top, parent);
      names.push(top);
      await s.withMounts(mounts, (dir) => {
        assertTreesEqual(snapshotTree(dir), want, `an active snapshot on ${LAYERS} layers`);
        fs.writeFileSync(path.join(dir, 'container-write'), 'ok');
      });
      assert.equal((await c.list(['kind==committed'])).filter((i) => names.includes(i.name)).length, LAYERS);
    } finally {
      for (const n of names.reverse()) await c.remove(n).catch(() => undefined);
    }
  }, { timeout: 600_000 });
});
