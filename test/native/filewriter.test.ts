/**
 * The applier's file writer (native/src/filewriter.c) on its own: what lands on disk, the order of a large
 * file's pieces, the byte budget, and how a failure surfaces. The unpack suites cover it through whole layers.
 */
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { FILE_WRITER, native, O } from '../../native/index';

const MiB = 1024 * 1024;
const isRoot = process.getuid?.() === 0;

describe('native: file writer', () => {
  const n = native();
  let dir = '';

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-fw-'));
  });
  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const create = (name: string): number => fs.openSync(path.join(dir, name), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);

  it('writes data, owner, mode, xattrs and times of many small files, in any thread', () => {
    const w = n.fileWriterCreate(2, 64 * 1024); // a small budget: submit must wait for room, not fail
    const files: Array<{ name: string; data: Buffer; mode: number }> = [];
    const big = crypto.randomBytes(3 * 4096);
    for (let i = 0; i < 500; i++) {
      const name = `f${i}`;
      // The data is a slice of a larger buffer, as the ring hands it out.
      const data = big.subarray(i % 7, (i % 7) + (i * 37) % 9000);
      const mode = i % 3 === 0 ? 0o4755 : 0o640;
      const flags = isRoot ? FILE_WRITER.CHOWN : 0;
      const xattrs: Array<[string, Buffer]> | null = i % 5 === 0 ? [['user.i', Buffer.from(String(i))]] : null;
      n.fileWriterSubmit(w, create(name), big, i % 7, data.length, 0, flags, 1000 + i, 2000 + i, mode, 1_600_000_000 + i, 123, 1_500_000_000 + i, 456_789, xattrs, name);
      files.push({ name, data, mode });
    }
    n.fileWriterDrain(w);
    for (const [i, f] of files.entries()) {
      const p = path.join(dir, f.name);
      // Stat before reading: the read would move atime (relatime).
      const st = fs.statSync(p, { bigint: true });
      assert.deepEqual(fs.readFileSync(p), f.data, f.name);
      assert.equal(Number(st.mode) & 0o7777, f.mode, `${f.name} mode (setuid survives: set after chown)`);
      if (isRoot) assert.deepEqual([Number(st.uid), Number(st.gid)], [1000 + i, 2000 + i]);
      assert.equal(st.mtimeNs, BigInt(1_500_000_000 + i) * 1_000_000_000n + 456_789n);
      assert.equal(st.atimeNs, BigInt(1_600_000_000 + i) * 1_000_000_000n + 123n);
      if (i % 5 === 0) {
        try {
          assert.equal(n.lgetxattr(p, 'user.i')?.toString(), String(i));
        } catch (e) {
          // tmpfs without user xattrs: nothing to check there.
          if ((e as NodeJS.ErrnoException).code !== 'EOPNOTSUPP') throw e;
        }
      }
    }
  });

  it('writes a large file from ordered pieces, then finishes it, while small files pass it', () => {
    const w = n.fileWriterCreate(2, 2 * MiB);
    const content = crypto.randomBytes(5 * MiB + 123);
    const fd = create('large');
    const piece = 700 * 1024; // not a multiple of anything the kernel likes
    for (let off = 0; off < content.length; off += piece) {
      const len = Math.min(piece, content.length - off);
      n.fileWriterSubmit(w, fd, content, off, len, off, FILE_WRITER.PART | FILE_WRITER.SERIAL, 0, 0, 0, 0, 0, 0, 0, null, 'large');
      n.fileWriterSubmit(w, create(`s${off}`), Buffer.from('x'), 0, 1, 0, 0, 0, 0, 0o644, 0, 0, 0, 0, null, `s${off}`);
    }
    n.fileWriterSubmit(w, fd, null, 0, 0, 0, FILE_WRITER.SERIAL, 0, 0, 0o600, 0, 0, 1_234_567_890, 0, null, 'large');
    n.fileWriterDrain(w);
    assert.ok(crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, 'large'))).digest().equals(crypto.createHash('sha256').update(content).digest()));
    assert.equal(fs.statSync(path.join(dir, 'large')).mtimeMs, 1_234_567_890_000);
    // The final job closed the fd: writing to it now fails.
    assert.throws(() => fs.writeSync(fd, 'x'), { code: 'EBADF' });
  });

  it('reports the first failure with the file that failed, and keeps failing', () => {
    const w = n.fileWriterCreate(1, MiB);
    // A read-only fd: write(2) says EBADF.
    fs.writeFileSync(path.join(dir, 'ro'), '');
    const ro = n.openat2(-100, path.join(dir, 'ro'), O.RDONLY, 0, 0);
    n.fileWriterSubmit(w, ro, Buffer.from('data'), 0, 4, 0, 0, 0, 0, 0o644, 0, 0, 0, 0, null, 'dir/ro');
    assert.throws(() => n.fileWriterDrain(w), (e: NodeJS.ErrnoException) => e.code === 'EBADF' && e.path === 'dir/ro' && e.syscall === 'write');
    // Later submits are refused with the same error; their fds are still closed (no leak).
    const fd = create('after');
    assert.throws(() => n.fileWriterSubmit(w, fd, null, 0, 0, 0, 0, 0, 0, 0o644, 0, 0, 0, 0, null, 'after'), { code: 'EBADF', path: 'dir/ro' });
    assert.throws(() => fs.fstatSync(fd), { code: 'EBADF' });
  });

  it('refuses bad arguments before anything reaches a thread', () => {
    const w = n.fileWriterCreate(1, MiB);
    assert.throws(() => n.fileWriterCreate(0, MiB), RangeError);
    const fd = create('bad');
    assert.throws(() => n.fileWriterSubmit(w, fd, Buffer.alloc(4), 2, 4, 0, 0, 0, 0, 0o644, 0, 0, 0, 0, null, 'bad'), RangeError);
    assert.throws(() => fs.fstatSync(fd), { code: 'EBADF' }, 'a refused final job still closes its fd');
    n.fileWriterDrain(w);
  });

  it('close stops the threads at once: files already queued are closed, later submits fail', () => {
    const w = n.fileWriterCreate(2, 4 * MiB);
    const name = 'closed-before';
    n.fileWriterSubmit(w, create(name), Buffer.from('kept'), 0, 4, 0, 0, 0, 0, 0o644, 0, 0, 0, 0, null, name);
    n.fileWriterDrain(w);
    n.fileWriterClose(w);
    assert.equal(fs.readFileSync(path.join(dir, name), 'utf8'), 'kept', 'what was drained before close is on disk');
    const fd = create('closed-after');
    assert.throws(() => n.fileWriterSubmit(w, fd, Buffer.from('lost'), 0, 4, 0, 0, 0, 0, 0o644, 0, 0, 0, 0, null, 'closed-after'), { code: 'ECANCELED' });
    assert.throws(() => fs.fstatSync(fd), { code: 'EBADF' }, 'a refused final job still closes its fd');
    assert.equal(fs.statSync(path.join(dir, 'closed-after')).size, 0);
    n.fileWriterClose(w); // twice is harmless
  });
});
