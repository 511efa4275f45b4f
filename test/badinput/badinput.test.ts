/**
 * Bad input over the socket: every refused call returns the gRPC code containerd maps (NotFound,
 * AlreadyExists, FailedPrecondition, InvalidArgument), a message naming the problem, and changes nothing
 * (List before == List after, including labels and timestamps).
 */
import assert from 'node:assert/strict';
import { SnapshotsApiClient } from '../../src/client/snapshots';
import { Kind as PbKind } from '../../src/gen/containerd/services/snapshots/v1/snapshots';
import { comparable, ckey, cname, driverSuite, expectCode, type DriverSuite } from '../conformance/harness';

interface Case {
  what: string;
  call: () => Promise<unknown>;
  code: string;
  /** Words the message should contain (lower-cased match), so people can tell what went wrong. */
  mentions?: string[];
}

async function refusedWithoutChange(s: DriverSuite, cases: Case[]): Promise<void> {
  const failures: string[] = [];
  for (const k of cases) {
    const before = comparable(await s.client.list());
    try {
      const msg = await expectCode(k.call(), k.code, k.what);
      for (const m of k.mentions ?? []) {
        if (!msg.toLowerCase().includes(m.toLowerCase())) failures.push(`${k.what}: message ${JSON.stringify(msg)} does not mention ${JSON.stringify(m)}`);
      }
    } catch (e) {
      failures.push((e as Error).message);
    }
    const after = comparable(await s.client.list());
    try {
      assert.deepEqual(after, before);
    } catch {
      failures.push(`${k.what}: the snapshot list changed`);
    }
  }
  assert.deepEqual(failures, [], 'bad input handled wrongly');
}

driverSuite('bad input', (s) => {
  // A small population the refused calls must leave alone: committed base ← active, base ← view, base ← child ← active.
  let base = '';
  let child = '';
  let active = '';
  let view = '';
  const missing = `default/99/does not exist sha256:${'0'.repeat(64)}`;

  s.it('setup: a population to protect', async () => {
    base = await s.layer('', [], cname(), { 'containerd.io/snapshot.ref': 'sha256:base' });
    child = await s.layer(base, []);
    active = ckey('extract');
    await s.client.prepare(active, child, { 'containerd.io/snapshot/label': 'x' });
    view = ckey('view');
    await s.client.view(view, base);
  });

  s.it('unknown keys are NOT_FOUND', () =>
    refusedWithoutChange(s, [
      { what: 'Stat of an unknown key', call: () => s.client.stat(missing), code: 'NOT_FOUND', mentions: ['does not exist'] },
      { what: 'Mounts of an unknown key', call: () => s.client.mounts(missing), code: 'NOT_FOUND' },
      { what: 'Remove of an unknown key', call: () => s.client.remove(missing), code: 'NOT_FOUND' },
      { what: 'Commit of an unknown key', call: () => s.client.commit(cname(), missing), code: 'NOT_FOUND' },
      { what: 'Usage of an unknown key', call: () => s.client.usage(missing), code: 'NOT_FOUND' },
      { what: 'Update of an unknown key', call: () => s.client.update(missing, { a: 'b' }, ['labels.a']), code: 'NOT_FOUND' },
      // A prefix or a suffix of a real key is another key.
      { what: 'Stat of a key prefix', call: () => s.client.stat(active.slice(0, -1)), code: 'NOT_FOUND' },
      { what: 'Stat of a key with a trailing space', call: () => s.client.stat(active + ' '), code: 'NOT_FOUND' },
    ]));

  s.it('missing or unusable parents', () =>
    refusedWithoutChange(s, [
      { what: 'Prepare on a missing parent', call: () => s.client.prepare(ckey('x'), missing), code: 'NOT_FOUND', mentions: ['parent'] },
      { what: 'View on a missing parent', call: () => s.client.view(ckey('x'), missing), code: 'NOT_FOUND', mentions: ['parent'] },
      { what: 'Prepare on an active parent', call: () => s.client.prepare(ckey('x'), active), code: 'INVALID_ARGUMENT', mentions: ['committed'] },
      { what: 'Prepare on a view parent', call: () => s.client.prepare(ckey('x'), view), code: 'INVALID_ARGUMENT', mentions: ['committed'] },
      { what: 'View on an active parent', call: () => s.client.view(ckey('x'), active), code: 'INVALID_ARGUMENT' },
    ]));

  s.it('empty keys and names are INVALID_ARGUMENT', () =>
    refusedWithoutChange(s, [
      { what: 'Prepare with an empty key', call: () => s.client.prepare('', base), code: 'INVALID_ARGUMENT', mentions: ['empty'] },
      { what: 'View with an empty key', call: () => s.client.view('', base), code: 'INVALID_ARGUMENT' },
      { what: 'Commit to an empty name', call: () => s.client.commit('', active), code: 'INVALID_ARGUMENT' },
      { what: 'Stat of an empty key', call: () => s.client.stat(''), code: 'INVALID_ARGUMENT' },
      { what: 'Remove of an empty key', call: () => s.client.remove(''), code: 'INVALID_ARGUMENT' },
    ]));

  s.it('commit refusals', () =>
    refusedWithoutChange(s, [
      { what: 'Commit of a view', call: () => s.client.commit(cname(), view), code: 'FAILED_PRECONDITION', mentions: ['view'] },
      { what: 'Commit of a committed snapshot', call: () => s.client.commit(cname(), base), code: 'FAILED_PRECONDITION' },
      { what: 'Commit to an existing committed name', call: () => s.client.commit(base, active), code: 'ALREADY_EXISTS', mentions: ['exists'] },
      { what: 'Commit to the name of a view', call: () => s.client.commit(view, active), code: 'ALREADY_EXISTS' },
      {
        what: 'Commit with an oversized label',
        call: () => s.client.commit(cname(), active, { k: 'v'.repeat(4096) }),
        code: 'INVALID_ARGUMENT',
        mentions: ['label'],
      },
    ]));

  s.it('removing a parent with children is FAILED_PRECONDITION', () =>
    refusedWithoutChange(s, [
      { what: 'Remove of a parent with a view and a child', call: () => s.client.remove(base), code: 'FAILED_PRECONDITION', mentions: ['child'] },
      { what: 'Remove of a parent with an active child', call: () => s.client.remove(child), code: 'FAILED_PRECONDITION' },
    ]));

  s.it('Mounts of a committed snapshot is FAILED_PRECONDITION', () =>
    refusedWithoutChange(s, [{ what: 'Mounts of a committed snapshot', call: () => s.client.mounts(base), code: 'FAILED_PRECONDITION', mentions: ['committed'] }]));

  s.it('malformed filters are INVALID_ARGUMENT', async () => {
    // A short deadline: a List that never answers shows up as DEADLINE_EXCEEDED instead of stalling the suite.
    const quick = new SnapshotsApiClient(s.d.address, 3_000);
    try {
      await refusedWithoutChange(
        s,
        ['labels."unterminated==x', '==x', 'name==', 'name~=(', 'kind==committed,', ',kind==view', 'name==a b', 'labels.', 'kind=committed'].map(
          (f): Case => ({ what: `List with filter ${JSON.stringify(f)}`, call: () => quick.list([f]), code: 'INVALID_ARGUMENT', mentions: ['filter'] }),
        ).concat([
          // One bad string among good ones spoils the request.
          { what: 'List with a good and a bad filter', call: () => quick.list(['kind==view', 'labels."x']), code: 'INVALID_ARGUMENT' },
        ]),
      );
    } finally {
      quick.close();
    }
  }, { timeout: 300_000 });

  s.it('bad Update field paths are INVALID_ARGUMENT', () =>
    refusedWithoutChange(
      s,
      ['name', 'kind', 'parent', 'created_at', 'updated_at', 'labelsx', 'size', 'labels_', 'Labels'].map(
        (fp): Case => ({
          what: `Update of field path ${JSON.stringify(fp)}`,
          call: () =>
            s.client.updateRaw({ name: active, parent: base, kind: PbKind.COMMITTED, labels: { a: 'b' }, createdAt: undefined, updatedAt: undefined }, [fp]),
          code: 'INVALID_ARGUMENT',
          mentions: [fp],
        }),
      ).concat([
        {
          what: 'Update with a good and a bad field path',
          call: () => s.client.update(active, { a: 'b' }, ['labels.a', 'parent']),
          code: 'INVALID_ARGUMENT',
        },
      ]),
    ));

  s.it('oversized labels (> 4096 bytes key + value) are INVALID_ARGUMENT', () => {
    const longValue = { 'containerd.io/snapshot/big': 'v'.repeat(4097 - 'containerd.io/snapshot/big'.length) };
    const longKey = { ['k'.repeat(4096)]: 'v' };
    return refusedWithoutChange(s, [
      { what: 'Prepare with a long label value', call: () => s.client.prepare(ckey('x'), base, longValue), code: 'INVALID_ARGUMENT', mentions: ['label'] },
      { what: 'Prepare with a long label key', call: () => s.client.prepare(ckey('x'), base, longKey), code: 'INVALID_ARGUMENT' },
      { what: 'View with a long label', call: () => s.client.view(ckey('x'), base, longValue), code: 'INVALID_ARGUMENT' },
      { what: 'Update to a long label', call: () => s.client.update(active, longValue, ['labels']), code: 'INVALID_ARGUMENT' },
      {
        what: 'Update of one long label',
        call: () => s.client.update(active, longValue, ['labels.containerd.io/snapshot/big']),
        code: 'INVALID_ARGUMENT',
      },
    ]);
  });

  s.it('labels at exactly 4096 bytes are accepted', async () => {
    const k = 'containerd.io/snapshot/edge';
    const labels = { [k]: 'v'.repeat(4096 - k.length) };
    const key = ckey('x');
    await s.client.prepare(key, base, labels);
    assert.deepEqual((await s.client.stat(key)).labels, labels);
    await s.client.remove(key);
  });

  s.it('prepare on an existing key is ALREADY_EXISTS and keeps the original', () =>
    refusedWithoutChange(s, [
      { what: 'Prepare on an active key', call: () => s.client.prepare(active, base), code: 'ALREADY_EXISTS' },
      { what: 'Prepare on a committed name', call: () => s.client.prepare(base, ''), code: 'ALREADY_EXISTS' },
      { what: 'View on a view key', call: () => s.client.view(view, child), code: 'ALREADY_EXISTS' },
    ]));

  s.it('the population is intact after all of it', async () => {
    const c = s.client;
    assert.equal((await c.stat(base)).kind, 'committed');
    assert.equal((await c.stat(child)).parent, base);
    const a = await c.stat(active);
    assert.equal(a.kind, 'active');
    assert.equal(a.parent, child);
    assert.deepEqual(a.labels, { 'containerd.io/snapshot/label': 'x' });
    assert.equal((await c.stat(view)).kind, 'view');
    for (const k of [view, active, child, base]) await c.remove(k);
    assert.deepEqual(await c.list(), []);
  });
});
