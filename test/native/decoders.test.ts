/**
 * The addon's decoders on their own (native/src/gunzip.c, native/src/unzstd.c): byte-exact output through
 * output runs smaller than the data, input fed in pieces, several frames or members, and how a cut or corrupt
 * stream shows. The unpack suites (hostile corpus, peers) cover them through whole layers.
 */
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as zlib from 'node:zlib';
import { describe, it } from 'node:test';
import { compress as zstdCompress } from 'zstd-napi';
import { native } from '../../native/index';

type Run = (input: Uint8Array, output: Uint8Array) => [number, number, boolean | number];

/** Feeds input in pieces of `piece` bytes through runs of `run` bytes; returns the output and the last "mid". */
function decode(step: Run, input: Buffer, piece: number, run: number): { out: Buffer; mid: boolean } {
  const parts: Buffer[] = [];
  const room = new Uint8Array(run);
  let mid = false;
  for (let off = 0; off < input.length; off += piece) {
    let src: Uint8Array = input.subarray(off, Math.min(input.length, off + piece));
    for (;;) {
      const [consumed, produced, m] = step(src, room);
      parts.push(Buffer.from(room.subarray(0, produced)));
      src = src.subarray(consumed);
      mid = m === true || (typeof m === 'number' && m !== 0);
      if (src.length === 0 && produced < room.length) break;
    }
  }
  return { out: Buffer.concat(parts), mid };
}

// Compressible but not trivial: repeated text with random runs.
const data = Buffer.concat(Array.from({ length: 64 }, (_, i) => Buffer.concat([Buffer.from(`line ${i} `.repeat(200)), crypto.randomBytes(3000)])));

describe('native: zstd decoder', () => {
  const n = native();
  const step = (h: ReturnType<typeof n.unzstdCreate>): Run => (i, o) => n.unzstdRun(h, i, o);

  it('decodes two frames fed in odd pieces through small runs, exactly', () => {
    const frames = Buffer.concat([zstdCompress(data), zstdCompress(data.subarray(0, 5000))]);
    const h = n.unzstdCreate();
    const r = decode(step(h), frames, 777, 4096);
    assert.ok(r.out.equals(Buffer.concat([data, data.subarray(0, 5000)])));
    assert.equal(r.mid, false, 'a complete stream ends between frames');
    n.unzstdFree(h);
  });

  it('says a cut stream ended inside a frame, and refuses corrupt data', () => {
    const frame = zstdCompress(data);
    const cut = decode(step(n.unzstdCreate()), frame.subarray(0, frame.length - 100), 4096, 65536);
    assert.equal(cut.mid, true);
    // The frame header's descriptor and the first block header: a reserved bit, an invalid block type.
    const bad = Buffer.from(frame);
    bad.fill(0xff, 4, 16);
    assert.throws(() => decode(step(n.unzstdCreate()), bad, 4096, 65536), { code: 'ERR_ZSTD_CORRUPT' });
  });

  it('cannot be used after unzstdFree', () => {
    const h = n.unzstdCreate();
    n.unzstdFree(h);
    assert.throws(() => n.unzstdRun(h, Buffer.alloc(4), new Uint8Array(16)), TypeError);
  });
});

describe('native: gzip decoder', () => {
  const n = native();
  const step = (h: ReturnType<typeof n.gunzipCreate>): Run => (i, o) => n.gunzipRun(h, i, o);

  it('decodes two members fed in odd pieces through small runs, exactly, and ignores trailing garbage', () => {
    const members = Buffer.concat([zlib.gzipSync(data), zlib.gzipSync(data.subarray(0, 5000)), Buffer.alloc(300)]);
    const r = decode(step(n.gunzipCreate()), members, 777, 4096);
    assert.ok(r.out.equals(Buffer.concat([data, data.subarray(0, 5000)])));
    assert.equal(r.mid, false);
  });

  it('says a cut stream ended inside a member, and refuses a bad checksum', () => {
    const gz = zlib.gzipSync(data);
    assert.equal(decode(step(n.gunzipCreate()), gz.subarray(0, gz.length - 4), 4096, 65536).mid, true);
    const bad = Buffer.from(gz);
    bad[bad.length - 6]! ^= 0xff; // inside the CRC-32
    assert.throws(() => decode(step(n.gunzipCreate()), bad, 4096, 65536), { code: 'ERR_GZIP_CORRUPT' });
  });
});
