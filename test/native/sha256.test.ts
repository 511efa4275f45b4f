/**
 * The addon's threaded SHA-256 (native/src/sha256.c) on its own: the digest of every byte given, in order,
 * whatever the sizes of the updates (across its 4 MiB buffer's wrap, bigger than the buffer, empty), and a spent
 * handle refused. The unpack suites check it through whole layers: every applied layer's diffID is compared
 * with the sha256 of its tarball.
 */
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { describe, it } from 'node:test';
import { native } from '../../native/index';

const MiB = 1 << 20;

function threaded(pieces: readonly Uint8Array[]): string {
  const n = native();
  const h = n.sha256Create();
  for (const p of pieces) n.sha256Update(h, p);
  return n.sha256Digest(h);
}

function reference(pieces: readonly Uint8Array[]): string {
  const h = crypto.createHash('sha256');
  for (const p of pieces) h.update(p);
  return h.digest('hex');
}

/** data cut into pieces of the given sizes, cycling through them (a 0 gives an empty piece). */
function cut(data: Buffer, sizes: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0, i = 0; off < data.length; i++) {
    const n = Math.min(sizes[i % sizes.length]!, data.length - off);
    out.push(data.subarray(off, off + n));
    off += n;
  }
  return out;
}

describe('native: threaded sha256', () => {
  it('digests nothing as the empty string does', () => {
    assert.equal(threaded([]), reference([]));
    assert.equal(threaded([new Uint8Array(0)]), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('gives the digest of the concatenation for updates of every size, across the buffer wrap', () => {
    const data = crypto.randomBytes(13 * MiB + 12_345);
    for (const sizes of [[1, 7, 4096, 65_537], [MiB - 1], [4 * MiB], [4 * MiB + 1], [9 * MiB], [0, 100_000, 0, 3]]) {
      const pieces = cut(data, sizes);
      assert.equal(threaded(pieces), reference(pieces), `pieces of ${sizes.join(', ')} bytes`);
    }
  });

  it('hashes the bytes as they were when given: the caller may reuse its buffer at once', () => {
    const ring = Buffer.alloc(256 * 1024);
    const copies: Buffer[] = [];
    const n = native();
    const h = n.sha256Create();
    for (let i = 0; i < 64; i++) {
      crypto.randomFillSync(ring);
      copies.push(Buffer.from(ring));
      n.sha256Update(h, ring);
    }
    assert.equal(n.sha256Digest(h), reference(copies));
  });

  it('refuses a spent handle: after its digest, and after close', () => {
    const n = native();
    const a = n.sha256Create();
    n.sha256Update(a, Buffer.from('x'));
    n.sha256Digest(a);
    assert.throws(() => n.sha256Update(a, Buffer.from('y')), { code: 'ERR_INVALID_STATE' });
    assert.throws(() => n.sha256Digest(a), { code: 'ERR_INVALID_STATE' });
    const b = n.sha256Create();
    n.sha256Update(b, crypto.randomBytes(6 * MiB));
    n.sha256Close(b);
    n.sha256Close(b);
    assert.throws(() => n.sha256Digest(b), { code: 'ERR_INVALID_STATE' });
  });

  it('rejects what is not bytes', () => {
    const n = native();
    const h = n.sha256Create();
    assert.throws(() => n.sha256Update(h, 'text' as unknown as Uint8Array), TypeError);
    assert.throws(() => n.sha256Update({} as never, Buffer.from('x')), TypeError);
    n.sha256Close(h);
  });
});
