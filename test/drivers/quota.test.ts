/**
 * Size limits and O(1) usage through project quotas, for overlay and native, on loopback XFS (prjquota) and
 * ext4 (project feature): writing past a snapshot's limit fails with EDQUOT/ENOSPC inside its mount, and usage
 * comes from quota accounting. Kernels without quota support (CONFIG_XFS_QUOTA / CONFIG_QFMT_V2) skip with the
 * reason; the other driver tests check that a limit is then refused rather than ignored. To run them for real
 * on such a host, use the Debian-kernel VM:
 *   DM_VM_EXTRA_MODULES="quota_v2 quota_tree" ../shared/dm-vm/dm-vm-run.sh "$PWD" -- node --test dist/test/drivers/quota.test.js
 */
import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DriverName } from '../../drivers/driver';
import { cleanupStale, createExt4, createXfs, projectQuotaMissing, type LoopBackend } from '../helpers/backends';
import { createHarness, type Harness } from './harness';

const MiB = 1024 * 1024;

/**
 * Writes up to `mib` MiB into p the way a container would: from a process without CAP_SYS_RESOURCE (root with
 * it ignores VFS quota hard limits, so ext4 would never refuse it; XFS enforces project limits regardless).
 * fsync per block so delayed allocation cannot hide the limit. Returns the bytes that landed and the error.
 */
function fill(p: string, mib: number): { written: number; error: string } {
  const r = spawnSync(
    'setpriv',
    ['--bounding-set=-sys_resource', '--inh-caps=-sys_resource', 'dd', 'if=/dev/zero', `of=${p}`, 'bs=1M', `count=${mib}`, 'oflag=dsync'],
    { encoding: 'utf8' },
  );
  if (r.error) throw r.error;
  const written = fs.existsSync(p) ? fs.statSync(p).size : 0;
  if (r.status === 0) return { written, error: 'none' };
  if (/quota exceeded/i.test(r.stderr)) return { written, error: 'EDQUOT' };
  if (/no space left/i.test(r.stderr)) return { written, error: 'ENOSPC' };
  return { written, error: r.stderr.trim() };
}

for (const kind of ['xfs', 'ext4'] as const) {
  for (const driverName of ['overlay', 'native'] as DriverName[]) {
    describe(`${driverName} size limits on ${kind} project quotas`, () => {
      let skip: string | undefined;
      let backend: LoopBackend | undefined;
      let h: Harness | undefined;
      before(async () => {
        skip = await projectQuotaMissing(kind);
        if (skip) {
          console.log(`# skipping ${driverName}/${kind} quota tests: ${skip}`);
          return;
        }
        await cleanupStale();
        backend = kind === 'xfs' ? await createXfs() : await createExt4();
        h = await createHarness(driverName, { root: path.join(backend.mountpoint, 'strata') });
      });
      after(async () => {
        if (h) await h.cleanup().catch(() => undefined);
        if (backend) await backend.cleanup();
      });

      test('writes past the limit fail with EDQUOT/ENOSPC; usage is from the quota', async (t) => {
        if (skip || !h) return t.skip(skip);
        const s = await h.driver.status();
        assert.match(s.quota!, /^project quotas/);

        const base = await h.create('active');
        let dir = await h.mount(base);
        fs.writeFileSync(path.join(dir, 'seed'), Buffer.alloc(MiB, 1));
        await h.unmount(dir);
        const c = await h.commit(base);

        const limited = await h.create('active', c, 8 * MiB);
        dir = await h.mount(limited);
        const r = fill(path.join(dir, 'big'), 32);
        t.diagnostic(`wrote ${r.written / MiB} MiB under an 8 MiB limit, then ${r.error}`);
        assert.ok(r.error === 'EDQUOT' || r.error === 'ENOSPC', `expected EDQUOT/ENOSPC, got ${r.error}`);
        assert.ok(r.written <= 9 * MiB, `wrote ${r.written} bytes`);
        const u = await h.driver.usage(limited);
        assert.equal(u.method, 'quota');
        assert.ok(u.size >= 4 * MiB && u.size <= 9 * MiB, `usage ${u.size}`);
        // Deleting frees the quota again.
        fs.unlinkSync(path.join(dir, 'big'));
        fs.writeFileSync(path.join(dir, 'small'), Buffer.alloc(MiB, 2));
        await h.unmount(dir);

        // A snapshot without a limit still gets O(1) usage.
        const free = await h.create('active', c);
        dir = await h.mount(free);
        assert.equal(fill(path.join(dir, 'f'), 12).error, 'none');
        await h.unmount(dir);
        const u2 = await h.driver.usage(free);
        assert.equal(u2.method, 'quota');
        assert.ok(u2.size >= 12 * MiB, `usage ${u2.size}`);
      });
    });
  }
}
