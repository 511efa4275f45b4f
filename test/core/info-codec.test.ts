/**
 * The cached encoding of Info-bearing responses (src/server/info-codec.ts) must be byte-for-byte what the
 * generated protobuf code produces, and must follow a row's changes (a relabelled snapshot is a new row object).
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import {
  Kind as PbKind,
  ListSnapshotsResponse,
  StatSnapshotResponse,
} from '../../src/gen/containerd/services/snapshots/v1/snapshots';
import type { Info } from '../../src/core/types';
import { encodeInfoField, infoToPb } from '../../src/server/info-codec';

function info(i: number, labels: Record<string, string>): Info {
  return Object.freeze({ name: `layer-${i}`, parent: i ? `layer-${i - 1}` : '', kind: 'committed', created: new Date(1_700_000_000_123 + i), updated: new Date(1_700_000_100_456 + i), labels });
}

describe('info-codec', () => {
  it('encodes Stat and List responses exactly as the generated code does', () => {
    const infos = Array.from({ length: 300 }, (_, i) => info(i, i % 3 ? { 'containerd.io/snapshot.ref': `sha256:${'ab'.repeat(32)}`, 'x': 'é'.repeat(i) } : {}));
    for (const x of infos) {
      const pb = infoToPb(x);
      assert.deepEqual(encodeInfoField([pb]), Buffer.from(StatSnapshotResponse.encode({ info: pb }).finish()));
    }
    const pbs = infos.map(infoToPb);
    const ours = encodeInfoField(pbs);
    assert.deepEqual(ours, Buffer.from(ListSnapshotsResponse.encode({ info: pbs }).finish()));
    const back = ListSnapshotsResponse.decode(ours);
    assert.equal(back.info.length, 300);
    assert.equal(back.info[299]!.name, 'layer-299');
    assert.equal(back.info[299]!.kind, PbKind.COMMITTED);
    assert.equal(back.info[2]!.labels.x, 'éé');
    assert.deepEqual(encodeInfoField([]), Buffer.alloc(0));
  });

  it('an Info of a changed row encodes its new state; the same Info encodes from the cache', () => {
    const before = info(1, { a: '1' });
    const after = info(1, { a: '2' });
    const b1 = encodeInfoField([infoToPb(before)]);
    assert.equal(infoToPb(before), infoToPb(before), 'one protobuf object per Info');
    assert.deepEqual(encodeInfoField([infoToPb(before)]), b1);
    const b2 = encodeInfoField([infoToPb(after)]);
    assert.notDeepEqual(b1, b2);
    assert.equal(StatSnapshotResponse.decode(b2).info!.labels.a, '2');
  });
});
