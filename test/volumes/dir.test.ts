/** The volume suite on directory volumes: a plain root (no quota) and a loopback XFS with prjquota. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backendMissing, cleanupStale, createExt4, createXfs, projectQuotaMissing } from '../helpers/backends';
import { DirVolumeBackend } from '../../src/volumes/backends/dir';
import { detectDirQuota } from '../../src/volumes/backends/quota';
import { tmpRoot, volumeSuite } from './harness';

volumeSuite('volumes: dir backend on a plain root', async () => {
  const root = tmpRoot();
  const volumes = path.join(fs.realpathSync(root), 'volumes');
  return {
    root,
    // A plain root: no project quota, whatever filesystem /tmp is on.
    backend: () => new DirVolumeBackend(volumes, async () => 'test: plain root'),
    limits: false,
    cleanup: async () => {
      for (const d of fs.existsSync(volumes) ? fs.readdirSync(volumes) : []) {
        await import('node:child_process').then(({ execFileSync }) => {
          try {
            execFileSync('umount', ['-l', path.join(volumes, d)], { stdio: 'ignore' });
          } catch {
            /* not a mountpoint */
          }
        });
      }
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
});

for (const kind of ['xfs', 'ext4'] as const) {
  volumeSuite(`volumes: dir backend with project quota on ${kind}`, async () => {
    const missing = await projectQuotaMissing(kind);
    if (missing) return missing;
    await cleanupStale();
    const be = kind === 'xfs' ? await createXfs() : await createExt4();
    const root = path.join(be.mountpoint, 'strata');
    fs.mkdirSync(root);
    return {
      root,
      backend: () => new DirVolumeBackend(path.join(root, 'volumes'), detectDirQuota),
      limits: true,
      cleanup: () => be.cleanup(),
    };
  });
}

// The real detection on a filesystem that has no project quota: sizes are refused, the rest works.
volumeSuite('volumes: dir backend on XFS without prjquota', async () => {
  const missing = await backendMissing('xfs');
  if (missing) return missing;
  const be = await createXfs({ quota: false });
  const root = path.join(be.mountpoint, 'strata');
  fs.mkdirSync(root);
  return {
    root,
    backend: () => new DirVolumeBackend(path.join(root, 'volumes'), detectDirQuota),
    limits: false,
    cleanup: () => be.cleanup(),
  };
});
