/**
 * This machine's kernel has CONFIG_QUOTA but neither CONFIG_XFS_QUOTA nor CONFIG_QFMT_V2, so XFS refuses
 * `prjquota` and ext4 with the quota feature refuses to mount: the project-quota suites skip on the host. So
 * that they still run for real (here and on the CI machine, which has the same kernel), this file boots the
 * dm VM (../shared/dm-vm, stock Debian kernel with XFS quota and quota_v2) once and runs those suites inside.
 *
 * It skips when the host itself supports project quotas (the suites ran on the host), inside the VM, when the
 * VM tooling is missing, or when STRATA_TEST_VM=0 (it costs about 1.5-2 minutes of emulated CPU).
 */
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { projectQuotaMissing } from '../helpers/backends';

// dist/test/native/ → the repository root.
const repoRoot = path.resolve(__dirname, '..', '..', '..');
const vmScript = process.env.STRATA_DM_VM ?? path.resolve(repoRoot, '..', 'shared', 'dm-vm', 'dm-vm-run.sh');
const SUITES = ['dist/test/native/native.test.js', 'dist/test/native/quota.test.js'];

async function whySkip(): Promise<string | undefined> {
  if (process.env.DM_VM === '1') return 'already inside the dm VM';
  if (process.env.STRATA_TEST_VM === '0') return 'STRATA_TEST_VM=0';
  if (process.env.STRATA_DM_LANE_QUOTA === '1') return 'the VM lane of this run (scripts/dm-lane.sh, group quota) runs the quota suites';
  if (process.getuid?.() !== 0) return 'needs root';
  const missing = [await projectQuotaMissing('xfs'), await projectQuotaMissing('ext4')].filter(Boolean);
  if (missing.length === 0) return 'the host kernel has project quotas: the suites ran on the host';
  if (!fs.existsSync(vmScript)) return `no dm VM script at ${vmScript}`;
  if (!['/usr/bin/qemu-system-x86_64', '/usr/local/bin/qemu-system-x86_64'].some((p) => fs.existsSync(p))) {
    return 'qemu-system-x86_64 is not installed';
  }
  for (const s of SUITES) if (!fs.existsSync(path.join(repoRoot, s))) return `${s} is not built`;
  return undefined;
}

function runInVm(): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      vmScript,
      [repoRoot, '--', process.execPath, '--test', '--test-name-pattern=quota', ...SUITES],
      {
        cwd: repoRoot,
        env: {
          ...process.env,
          DM_VM_EXTRA_MODULES: 'quota_v2 quota_tree', // ext4's quota format; XFS quota is built into xfs.ko
          DM_VM_MEM: process.env.DM_VM_MEM ?? '2048',
          DM_VM_TIMEOUT: process.env.DM_VM_TIMEOUT ?? '900',
          DM_VM_QUIET: '1',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

describe('project quotas inside the dm VM (host kernel lacks quota support)', () => {
  it('runs the quota suites on a kernel with XFS and ext4 project quotas', { timeout: 20 * 60_000 }, async (t) => {
    const reason = await whySkip();
    if (reason) return t.skip(reason);
    const { code, output } = await runInVm();
    const tail = output.split('\n').slice(-60).join('\n');
    assert.equal(code, 0, `the VM run failed (exit ${code}):\n${tail}`);
    const count = (name: string) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(output)?.[1] ?? NaN);
    assert.equal(count('fail'), 0, tail);
    assert.ok(count('pass') >= 8, `expected the 8 quota tests to pass:\n${tail}`);
    // Every skip must come from the name filter; a skip for a missing backend means quotas did not run.
    const realSkips = output.split('\n').filter((l) => l.includes('# SKIP') && !l.includes('does not match pattern'));
    assert.deepEqual(realSkips, [], 'nothing skipped for lack of a backend inside the VM');
    t.diagnostic(`in the VM: ${count('pass')} passed`);
  });
});
