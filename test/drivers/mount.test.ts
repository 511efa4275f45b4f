/**
 * src/core/mount.ts: option parsing as containerd does it, lowerdir compaction for long overlay options, and
 * real mounts (a read-only bind really is read-only; unmountAll lifts stacked mounts and is idempotent).
 */
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MS } from '../../native/index';
import { compactLowerdir, mountAll, mountData, parseMountOptions, unmountAll } from '../../src/core/mount';
import { tryWrite } from './harness';

const base = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-mount-'));
after(async () => {
  await unmountAll(path.join(base, 'mnt')).catch(() => undefined);
  fs.rmSync(base, { recursive: true, force: true });
});

test('options split into flags and data; later options win', () => {
  const p = parseMountOptions(['ro', 'rbind', 'nosuid', 'index=off', 'rw', 'ro', 'lowerdir=/a:/b']);
  assert.equal(p.flags, MS.RDONLY | MS.BIND | MS.REC | MS.NOSUID);
  assert.deepEqual(p.data, ['index=off', 'lowerdir=/a:/b']);
  assert.equal(parseMountOptions(['ro', 'rw']).flags & MS.RDONLY, 0);
});

test('long lowerdirs are compacted to the common parent directory', () => {
  const dirs = Array.from({ length: 400 }, (_, i) => `/var/lib/strata/snapshots/${i + 10}/fs`);
  const opts = ['index=off', `upperdir=/var/lib/strata/snapshots/999/fs`, `lowerdir=${dirs.join(':')}`];
  const c = compactLowerdir(opts);
  assert.equal(c.chdir, '/var/lib/strata/snapshots/');
  assert.equal(c.options.at(-1), `lowerdir=${dirs.map((d) => d.slice(c.chdir.length)).join(':')}`);
  // Ids sharing leading digits must not leave a partial name as the common part.
  assert.equal(compactLowerdir(['lowerdir=/r/s/12/fs:/r/s/13/fs']).chdir, '/r/s/');
  // Short options are passed through untouched.
  const m = mountData({ type: 'overlay', source: 'overlay', options: ['lowerdir=/a/1:/a/2'] });
  assert.deepEqual(m, { flags: 0, data: 'lowerdir=/a/1:/a/2', chdir: '' });
  assert.equal(mountData({ type: 'overlay', source: 'overlay', options: opts }).chdir, '/var/lib/strata/snapshots/');
});

test('a ro bind is read-only for real; unmountAll lifts stacked mounts and is idempotent', async () => {
  const src = path.join(base, 'src');
  const mnt = path.join(base, 'mnt');
  fs.mkdirSync(src);
  fs.mkdirSync(mnt);
  fs.writeFileSync(path.join(src, 'f'), 'f');
  await mountAll([{ type: 'bind', source: src, options: ['ro', 'rbind'] }], mnt);
  assert.equal(fs.readFileSync(path.join(mnt, 'f'), 'utf8'), 'f');
  assert.equal(tryWrite(path.join(mnt, 'g')), 'EROFS');
  await mountAll([{ type: 'bind', source: src, options: ['rw', 'bind'] }], mnt);
  assert.equal(tryWrite(path.join(mnt, 'g')), 'ok');
  await unmountAll(mnt);
  await unmountAll(mnt);
  assert.ok(!fs.existsSync(path.join(mnt, 'f')), 'nothing mounted any more');
});

test('a failed mount leaves nothing behind', async () => {
  const mnt = path.join(base, 'mnt');
  await assert.rejects(
    mountAll(
      [
        { type: 'bind', source: path.join(base, 'src'), options: ['rbind'] },
        { type: 'overlay', source: 'overlay', options: [`lowerdir=${base}/missing1:${base}/missing2`] },
      ],
      mnt,
    ),
  );
  assert.ok(!fs.existsSync(path.join(mnt, 'f')), 'the first mount was undone');
});
