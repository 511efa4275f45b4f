/**
 * Apply workers kept warm between applies (src/unpack/worker-pool.ts): reused after success and after refusals,
 * never carrying anything from one apply into the next, bounded when applies run concurrently, and gone once
 * closed; a prewarmed worker is the one the next apply takes. Runs on any filesystem as any user (owners are
 * only kept as root, which the trees compare either way).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { applyLayer } from '../../src/unpack/engine';
import { UnpackError } from '../../src/unpack/errors';
import { closeIdleWorkers, idleWorkers, prewarm } from '../../src/unpack/worker-pool';
import { assertTreesEqual, snapshotTree } from '../helpers/tree';
import { corruptByte, gzip, TarBuilder, zstd } from './builder';

function sample(tag: string): Buffer {
  const b = new TarBuilder()
    .dir('etc/', { mode: 0o755, mtimeSec: 1_600_000_000 })
    .file('etc/hostname', `${tag}\n`, { mode: 0o644, mtimeSec: 1_600_000_001 })
    .dir('usr/bin/', { mode: 0o755, mtimeSec: 1_600_000_002 })
    .file('usr/bin/tool', Buffer.alloc(300_000, tag), { mode: 0o755, mtimeSec: 1_600_000_003 })
    .symlink('usr/bin/alias', 'tool', { mtimeSec: 1_600_000_004 });
  for (let i = 0; i < 50; i++) b.file(`var/lib/${tag}/f${i}`, `${tag} ${i}`, { mtimeSec: 1_600_000_005 + i });
  return b.build();
}

describe('apply worker pool', () => {
  let tmp: string;
  let n = 0;
  const dir = (): string => {
    const d = path.join(tmp, `t${n++}`);
    fs.mkdirSync(d, { mode: 0o755 });
    return d;
  };
  const blob = (b: Buffer): string => {
    const f = path.join(tmp, `layer${n++}`);
    fs.writeFileSync(f, b);
    return f;
  };
  /** The tree a worker the pool never saw makes of the same layer: the reference. */
  const fresh = async (layer: string): Promise<ReturnType<typeof snapshotTree>> => {
    await closeIdleWorkers();
    const d = dir();
    await applyLayer({ layer, root: d, whiteouts: 'delete', sync: 'none' });
    return snapshotTree(d);
  };

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-pool-'));
  });
  afterEach(() => closeIdleWorkers());
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('a second apply takes the worker the first one left, and its tree is exact', async () => {
    const a = blob(gzip(sample('a')));
    const b = blob(zstd(sample('b')));
    const expected = await fresh(b);
    await closeIdleWorkers();
    assert.equal(idleWorkers(), 0);
    await applyLayer({ layer: a, root: dir(), whiteouts: 'delete', sync: 'none' });
    assert.equal(idleWorkers(), 1, 'the worker waits for the next apply');
    const target = dir();
    const running = applyLayer({ layer: b, root: target, whiteouts: 'overlay', sync: 'none' });
    assert.equal(idleWorkers(), 0, 'the waiting worker was handed the second apply');
    await running;
    assert.equal(idleWorkers(), 1);
    assertTreesEqual(snapshotTree(target), expected, 'the tree a reused worker made');
  });

  test('a refused layer gives its worker back, and the next apply on it starts clean', async () => {
    const good = blob(sample('c'));
    const expected = await fresh(good);
    // A header checksum broken halfway through: the refusal comes after some entries were made.
    const tarBytes = sample('d');
    const bad = blob(corruptByte(tarBytes, tarBytes.indexOf('var/lib/d/f25') + 148));
    await applyLayer({ layer: good, root: dir(), whiteouts: 'delete', sync: 'none' });
    await assert.rejects(applyLayer({ layer: bad, root: dir(), whiteouts: 'delete', sync: 'none' }), (e: unknown) => e instanceof UnpackError);
    assert.equal(idleWorkers(), 1, 'a refusal is an answer: the worker is reused');
    // Refused before the worker saw a byte: the layer is not an archive at all.
    await assert.rejects(applyLayer({ layer: blob(Buffer.from('BZh91AY&SY not a layer')), root: dir(), whiteouts: 'delete', sync: 'none' }));
    assert.equal(idleWorkers(), 1);
    const target = dir();
    await applyLayer({ layer: good, root: target, whiteouts: 'delete', sync: 'none' });
    assertTreesEqual(snapshotTree(target), expected, 'the tree after two refusals on the same worker');
  });

  test('a worker is reused only with a ring of the size asked for', async () => {
    const layer = blob(sample('h'));
    const expected = await fresh(layer);
    await closeIdleWorkers();
    await applyLayer({ layer, root: dir(), whiteouts: 'delete', sync: 'none' });
    assert.equal(idleWorkers(), 1);
    const target = dir();
    const small = applyLayer({ layer, root: target, whiteouts: 'delete', sync: 'none', ringBytes: 64 << 10 });
    assert.equal(idleWorkers(), 1, 'the idle worker has a 4 MiB ring: a new worker gets the 64 KiB one');
    await small;
    assert.equal(idleWorkers(), 2);
    assertTreesEqual(snapshotTree(target), expected, 'the tree through a 64 KiB ring');
  });

  test('a prewarmed worker (snapctl apply boots one before loading the command) takes the next apply', async () => {
    const layer = blob(zstd(sample('p')));
    const expected = await fresh(layer);
    await closeIdleWorkers();
    prewarm();
    assert.equal(idleWorkers(), 1);
    prewarm();
    assert.equal(idleWorkers(), 1, 'one waiting already: prewarm boots no other');
    const target = dir();
    const running = applyLayer({ layer, root: target, whiteouts: 'delete', sync: 'none' });
    assert.equal(idleWorkers(), 0, 'the apply took the prewarmed worker, still booting or not');
    await running;
    assert.equal(idleWorkers(), 1);
    assertTreesEqual(snapshotTree(target), expected, 'the tree the prewarmed worker made');
  });

  test('concurrent applies get a worker each; at most two wait afterwards', async () => {
    const layers = ['e', 'f', 'g'].map((t) => blob(gzip(sample(t))));
    const expected: Array<ReturnType<typeof snapshotTree>> = [];
    for (const l of layers) expected.push(await fresh(l));
    await closeIdleWorkers();
    const targets = layers.map(() => dir());
    await Promise.all(layers.map((l, i) => applyLayer({ layer: l, root: targets[i]!, whiteouts: 'delete', sync: 'none' })));
    assert.equal(idleWorkers(), 2);
    targets.forEach((t, i) => assertTreesEqual(snapshotTree(t), expected[i]!, `concurrent apply ${i}`));
    await closeIdleWorkers();
    assert.equal(idleWorkers(), 0);
  });
});
