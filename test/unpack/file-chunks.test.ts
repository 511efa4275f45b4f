/**
 * The layer file reader (src/unpack/file-chunks.ts): whole files and byte ranges come out exactly, in chunks
 * that stay intact until the next one is asked for (while the one after is read ahead into the other buffer);
 * the file is closed at the end, on return() and when the range runs past the end of the file.
 */
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FileChunks, type FileRange } from '../../src/unpack/file-chunks';

/** Reads everything, checking each chunk is unchanged once the next one has been read ahead. */
async function readAll(file: string, range: FileRange | undefined, chunkBytes: number): Promise<{ data: Buffer; chunks: number }> {
  const it = new FileChunks(file, range, chunkBytes);
  const parts: Buffer[] = [];
  let chunks = 0;
  for (;;) {
    const r = await it.next();
    if (r.done) break;
    assert.ok(r.value.length > 0 && r.value.length <= chunkBytes, `chunk of ${r.value.length} bytes`);
    const copy = Buffer.from(r.value);
    // Give the read-ahead (into the other buffer) time to land: it must not touch this chunk.
    await new Promise((resolve) => setTimeout(resolve, 1));
    assert.ok(copy.equals(r.value), `chunk ${chunks} changed while the caller held it`);
    parts.push(copy);
    chunks++;
  }
  return { data: Buffer.concat(parts), chunks };
}

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

describe('FileChunks', () => {
  let tmp: string;
  let file: string;
  const content = crypto.randomBytes(100_003);

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-chunks-'));
    file = path.join(tmp, 'blob');
    fs.writeFileSync(file, content);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('a whole file, in chunks of several sizes', async () => {
    for (const size of [1000, 4096, 65_536, 100_003, 1 << 20]) {
      const fds = openFds();
      const { data, chunks } = await readAll(file, undefined, size);
      assert.ok(data.equals(content), `chunk size ${size}`);
      assert.equal(chunks, Math.ceil(content.length / size));
      assert.equal(openFds(), fds, 'the file is closed at its end');
    }
  });

  test('byte ranges: inside the file, to its end, and past it', async () => {
    assert.ok((await readAll(file, { offset: 12_345, length: 50_000 }, 4096)).data.equals(content.subarray(12_345, 62_345)));
    assert.ok((await readAll(file, { offset: 99_000 }, 4096)).data.equals(content.subarray(99_000)));
    assert.ok((await readAll(file, { offset: 0, length: 0 }, 4096)).data.equals(Buffer.alloc(0)));
    // A range the file does not hold ends where the file does (the tar reader then reports the truncation).
    assert.ok((await readAll(file, { offset: 90_000, length: 1 << 20 }, 4096)).data.equals(content.subarray(90_000)));
  });

  test('return() closes the file mid-way, and next() is done after it', async () => {
    const fds = openFds();
    const it = new FileChunks(file, undefined, 1000);
    const first = await it.next();
    assert.equal(first.done, false);
    assert.ok(first.value.equals(content.subarray(0, 1000)));
    await it.return();
    assert.equal(openFds(), fds);
    assert.deepEqual(await it.next(), { done: true, value: undefined });
  });

  test('a missing file fails the first next() with the open error', async () => {
    const it = new FileChunks(path.join(tmp, 'missing'));
    await assert.rejects(it.next(), (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && /open/.test(e.message));
    await it.return();
  });
});
