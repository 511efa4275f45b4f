/**
 * Conformance, part 2: List (containerd's Walk) and its filter language over a fixed population of snapshots.
 * Keys have spaces, slashes and colons, so filters quote them as containerd's clients do.
 */
import assert from 'node:assert/strict';
import { ckey, cname, driverSuite } from './harness';

/**
 * Views made for the List streaming test. 250 by default; the dm VM lane (scripts/dm-lane.sh) sets
 * STRATA_TEST_VIEWS=120 because each devmapper view costs ~1.1 s under software emulation. Keep it above the
 * daemon's List batch (100, src/server/snapshots.ts) so a batch boundary is still crossed.
 */
const VIEWS = Number(process.env.STRATA_TEST_VIEWS ?? 250);

const q = (s: string): string => JSON.stringify(s);

driverSuite('conformance: walk filters', (s) => {
  s.it('filter matrix', async () => {
    const c = s.client;
    await s.removeAll();

    // c1 ← c2 ← a1 ; c1 ← v1 ; a2 (no parent)
    const c1 = cname();
    const c2 = cname();
    const a1 = ckey('container');
    const v1 = ckey('view');
    const a2 = ckey('extract');
    const k1 = ckey('extract');
    await c.prepare(k1, '');
    await c.commit(c1, k1, { 'a.b': 'v1', team: 'x', 'containerd.io/snapshot.ref': 'sha256:1' });
    const k2 = ckey('extract');
    await c.prepare(k2, c1);
    await c.commit(c2, k2, { 'a.b': 'v2' });
    await c.prepare(a1, c2, { team: 'x' });
    await c.view(v1, c1);
    await c.prepare(a2, '', { other: 'y z' });

    const all = [c1, c2, a1, v1, a2];
    const cases: Array<[string[], string[]]> = [
      [[], all],
      [[`name==${q(c1)}`], [c1]],
      [[`name==${q(a1)}`], [a1]],
      [['kind==committed'], [c1, c2]],
      [['kind==active'], [a1, a2]],
      [['kind==view'], [v1]],
      [[`parent==${q(c1)}`], [c2, v1]],
      [['parent!=""'], [c2, a1, v1]],
      [['parent==""'], [c1, a2]],
      [['labels."a.b"==v1'], [c1]],
      [['labels."a.b"==v2'], [c2]],
      // containerd's != also matches snapshots that do not have the label at all.
      [['labels."a.b"!=v1'], [c2, a1, v1, a2]],
      [['labels.team'], [c1, a1]],
      [['labels."containerd.io/snapshot.ref"'], [c1]],
      [['labels.other=="y z"'], [a2]],
      [['labels.team==x,kind==committed'], [c1]],
      [['labels.team,kind==active'], [a1]],
      [[`kind==active,parent==${q(c2)}`], [a1]],
      [['kind==view', 'labels."a.b"==v2'], [v1, c2]],
      [['kind==committed', 'kind==committed'], [c1, c2]],
      [['labels.team~=^x$'], [c1, a1]],
      [['labels.missing'], []],
      [['name==nothing-has-this-name'], []],
      [['unknownfield==x'], []],
    ];
    const failures: string[] = [];
    for (const [filters, want] of cases) {
      const got = (await c.list(filters)).map((i) => i.name).sort();
      const exp = [...want].sort();
      if (JSON.stringify(got) !== JSON.stringify(exp)) {
        const label = (n: string): string => ({ [c1]: 'c1', [c2]: 'c2', [a1]: 'a1', [v1]: 'v1', [a2]: 'a2' })[n] ?? n;
        failures.push(`${JSON.stringify(filters)}: got [${got.map(label).join(',')}], want [${exp.map(label).join(',')}]`);
      }
    }
    assert.deepEqual(failures, [], 'filters that returned the wrong snapshots');

    // List's Info agrees with Stat's for every snapshot.
    for (const info of await c.list()) {
      const st = await c.stat(info.name);
      assert.deepEqual({ ...info }, { ...st }, `List and Stat agree on ${info.name}`);
    }
    await s.removeAll();
  });

  s.it('List streams many snapshots completely', async () => {
    const c = s.client;
    await s.removeAll();
    const base = ckey('extract');
    await c.prepare(base, '');
    const name = cname();
    await c.commit(name, base);
    const want = new Set<string>([name]);
    // Several of the daemon's batches: nothing is lost or repeated at batch boundaries.
    const big = 'x'.repeat(3000);
    for (let i = 0; i < VIEWS; i++) {
      const k = ckey('view');
      await c.view(k, name, { big, i: String(i) });
      want.add(k);
    }
    const got = await c.list();
    assert.equal(got.length, want.size);
    for (const i of got) assert.ok(want.has(i.name), `unexpected ${i.name}`);
    assert.equal((await c.list([`labels.i==${VIEWS - 1}`])).length, 1);
    await s.removeAll();
  }, { timeout: 300_000 });
});
