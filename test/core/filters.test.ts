import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isStrataError } from '../../src/core/errors';
import { parseFilters } from '../../src/core/filters';
import type { Info } from '../../src/core/types';

const base = (over: Partial<Info>): Info => ({
  name: 'x',
  parent: '',
  kind: 'committed',
  created: new Date(0),
  updated: new Date(0),
  labels: {},
  ...over,
});

const snaps: Info[] = [
  base({ name: 'default/1/layer-a sha256:aaa', kind: 'committed', labels: { 'containerd.io/snapshot.ref': 'sha256:aaa', team: 'infra' } }),
  base({ name: 'default/2/layer-b', parent: 'default/1/layer-a sha256:aaa', kind: 'committed', labels: { 'a.b': 'v' } }),
  base({ name: 'default/3/active', parent: 'default/2/layer-b', kind: 'active' }),
  base({ name: 'default/4/view', parent: 'default/2/layer-b', kind: 'view', labels: { team: 'apps' } }),
];

function names(filters: string[]): string[] {
  const match = parseFilters(filters);
  return snaps.filter(match).map((s) => s.name);
}

describe('containerd filter syntax', () => {
  it('matches everything with no filter or an empty one', () => {
    assert.equal(names([]).length, 4);
    assert.equal(names(['']).length, 4);
    assert.equal(names(['kind==view', '']).length, 4);
  });

  it('compares kinds, names and parents', () => {
    assert.deepEqual(names(['kind==committed']), ['default/1/layer-a sha256:aaa', 'default/2/layer-b']);
    assert.deepEqual(names(['kind==active']), ['default/3/active']);
    assert.deepEqual(names(['name=="default/1/layer-a sha256:aaa"']), ['default/1/layer-a sha256:aaa']);
    assert.deepEqual(names(['parent==default/2/layer-b']), ['default/3/active', 'default/4/view']);
    assert.deepEqual(names(['parent!=""']), ['default/2/layer-b', 'default/3/active', 'default/4/view']);
    assert.deepEqual(names(['kind!=committed']), ['default/3/active', 'default/4/view']);
    assert.deepEqual(names(['parent==""']), ['default/1/layer-a sha256:aaa']);
    assert.equal(names(['parent']).length, 4, 'parent is always present, as in containerd');
  });

  it('reads labels with dotted and quoted keys, and tests presence', () => {
    assert.deepEqual(names(['labels."a.b"==v']), ['default/2/layer-b']);
    assert.deepEqual(names(['labels.a.b==v']), ['default/2/layer-b']);
    assert.deepEqual(names(['labels."containerd.io/snapshot.ref"']), ['default/1/layer-a sha256:aaa']);
    assert.deepEqual(names(['labels.team']), ['default/1/layer-a sha256:aaa', 'default/4/view']);
    assert.deepEqual(names(['labels.missing']), []);
  });

  it('ANDs selectors with commas and ORs filter strings', () => {
    assert.deepEqual(names(['labels.team,kind==view']), ['default/4/view']);
    assert.deepEqual(names(['kind==active', 'kind==view']), ['default/3/active', 'default/4/view']);
    assert.deepEqual(names(['labels.team==infra,kind==view', 'name==default/3/active']), ['default/3/active']);
  });

  it('matches regular expressions, with alternative quotes', () => {
    assert.deepEqual(names(['name~=layer-[ab]$']), ['default/2/layer-b']);
    assert.deepEqual(names(['name~=/^default\\/[34]\\//']), ['default/3/active', 'default/4/view']);
    assert.deepEqual(names(['labels.team~=|^ap|']), ['default/4/view']);
  });

  for (const bad of ['kind==', 'kind=committed', '==x', 'labels."unterminated', 'kind==a,', 'name~=(', 'a b', 'name==/x/']) {
    it(`refuses ${JSON.stringify(bad)} as InvalidArgument`, () => {
      assert.throws(
        () => parseFilters([bad]),
        (e: unknown) => isStrataError(e, 'InvalidArgument') && /filters: parse error/.test((e as Error).message),
      );
    });
  }
});
