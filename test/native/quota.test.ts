/**
 * src/quota on real loopback XFS (prjquota) and ext4 (quota,project + prjquota). On a kernel without quota
 * support these skip with the reason; quota-vm.test.ts then runs this file inside the dm VM's Debian kernel.
 */
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { MNT, MS, native } from '../../native/index';
import {
  PROJECT_ID_BASE,
  PROJECT_ID_RANGE,
  ProjectQuota,
  detectProjectQuota,
  projectIdFor,
} from '../../src/quota/index';
import { createExt4, createXfs, projectQuotaMissing } from '../helpers/backends';
import type { LoopBackend } from '../helpers/backends';
import { giveToNobody, writeAsNobody } from './quota-helpers';

const MiB = 1024 * 1024;
const rootSkip = process.getuid?.() === 0 ? false : 'needs root';

describe('quota: project ids and detection without quotas', () => {
  it('derives disjoint project ids from snapshot and volume ids', () => {
    assert.equal(projectIdFor('snapshot', 1), PROJECT_ID_BASE.snapshot + 1);
    assert.equal(projectIdFor('volume', 7), PROJECT_ID_BASE.volume + 7);
    const lastSnapshot = projectIdFor('snapshot', PROJECT_ID_RANGE - 1);
    assert.ok(lastSnapshot < projectIdFor('volume', 1));
    assert.ok(projectIdFor('volume', PROJECT_ID_RANGE - 1) < 2 ** 31);
    for (const bad of [0, -1, 1.5, PROJECT_ID_RANGE, Number.NaN]) {
      assert.throws(() => projectIdFor('snapshot', bad), RangeError, String(bad));
    }
  });

  it('reports unsupported, with a reason, where project quotas are off', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-quota-'));
    try {
      const s = await detectProjectQuota(tmp);
      if (s.supported) return; // a host whose /tmp really has prjquota: nothing to assert here
      assert.ok(s.reason && s.reason.length > 0);
      assert.ok(s.mountpoint, 'the mount is still reported');
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    const proc = await detectProjectQuota('/proc/self');
    assert.equal(proc.supported, false);
    assert.match(proc.reason ?? '', /proc/);
    const missing = await detectProjectQuota('/nonexistent/strata');
    assert.equal(missing.supported, false);
    assert.match(missing.reason ?? '', /ENOENT|no such file/i);
  });
});

for (const kind of ['xfs', 'ext4'] as const) {
  describe(`quota: ProjectQuota on ${kind}`, { skip: rootSkip }, () => {
    let be: LoopBackend | undefined;
    let skipReason: string | undefined;
    let bindTarget: string | undefined;

    before(async () => {
      skipReason = await projectQuotaMissing(kind);
      if (!skipReason) be = kind === 'xfs' ? await createXfs() : await createExt4();
    });
    after(async () => {
      if (bindTarget) {
        try {
          native().umount2(bindTarget, MNT.DETACH);
        } catch {
          /* not mounted */
        }
        fs.rmSync(bindTarget, { recursive: true, force: true });
      }
      await be?.cleanup();
    });

    it('detects the device and type, also through a bind mount', async (t) => {
      if (!be) return t.skip(skipReason);
      const sub = path.join(be.mountpoint, 'a', 'b');
      fs.mkdirSync(sub, { recursive: true });
      for (const dir of [be.mountpoint, sub]) {
        const s = await detectProjectQuota(dir);
        assert.deepEqual(s, { supported: true, device: be.device, fsType: kind, mountpoint: be.mountpoint }, dir);
      }
      bindTarget = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-quota-bind-'));
      native().mount(sub, bindTarget, '', MS.BIND, '');
      const viaBind = await detectProjectQuota(bindTarget);
      assert.equal(viaBind.supported, true);
      assert.equal(viaBind.device, be.device);
      assert.equal(viaBind.mountpoint, bindTarget);
    });

    it('assigns projects, enforces limits and reports usage', async (t) => {
      if (!be) return t.skip(skipReason);
      const q = await ProjectQuota.forDir(be.mountpoint);
      assert.equal(q.device, be.device);
      assert.equal(q.fsType, kind);
      const n = native();

      // A volume-like directory with existing content: recursive assign reaches every dir and file.
      const vol = path.join(be.mountpoint, 'volume');
      fs.mkdirSync(path.join(vol, 'deep', 'er'), { recursive: true });
      fs.writeFileSync(path.join(vol, 'deep', 'er', 'old'), Buffer.alloc(MiB, 3));
      fs.symlinkSync('old', path.join(vol, 'deep', 'er', 'link'));
      const volId = projectIdFor('volume', 3);
      q.assign(vol, volId, { recursive: true });
      for (const p of ['', 'deep', 'deep/er', 'deep/er/old']) {
        const fd = fs.openSync(path.join(vol, p), 'r');
        try {
          assert.equal(n.getProjectId(fd), volId, p || '.');
        } finally {
          fs.closeSync(fd);
        }
      }
      const u0 = q.usage(volId);
      assert.ok(u0.bytes >= MiB && u0.inodes >= 4, JSON.stringify(u0));

      // A snapshot-like empty directory assigned by fd: new entries inherit.
      const snap = path.join(be.mountpoint, 'snapshot');
      fs.mkdirSync(snap);
      const snapId = projectIdFor('snapshot', 12);
      const dfd = fs.openSync(snap, 'r');
      try {
        q.assign(dfd, snapId);
        assert.equal(n.getProjectId(dfd), snapId);
      } finally {
        fs.closeSync(dfd);
      }
      assert.ok(q.usage(snapId).bytes < 64 * 1024, 'an empty directory: at most a block or two');

      q.setLimit(snapId, 8 * MiB);
      giveToNobody(snap);
      const w = writeAsNobody(path.join(snap, 'fill'), 16 * MiB);
      assert.ok(w.code === 'EDQUOT' || w.code === 'ENOSPC', `write past the limit: ${JSON.stringify(w)}`);
      const used = q.usage(snapId);
      assert.ok(used.bytes >= 4 * MiB && used.bytes <= 8 * MiB + 256 * 1024, JSON.stringify(used));
      assert.equal(used.inodes, 2); // the directory and the file
      // The volume's project is unaffected by the snapshot's limit.
      assert.equal(q.usage(volId).bytes, u0.bytes);

      q.clearLimit(snapId);
      assert.equal(writeAsNobody(path.join(snap, 'fill'), 16 * MiB).code, undefined);
      assert.ok(q.usage(snapId).bytes >= 16 * MiB);

      // Fractional limits round up to whole blocks rather than failing.
      q.setLimit(snapId, 64 * MiB + 0.5);
      assert.throws(() => q.setLimit(snapId, -1), RangeError);
      assert.throws(() => q.setLimit(0, MiB), RangeError);
      assert.throws(() => q.usage(2 ** 32), RangeError);
    });
  });
}
