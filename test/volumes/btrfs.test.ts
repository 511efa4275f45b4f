/** The volume suite on btrfs subvolumes (loopback btrfs, qgroup limits). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backendMissing, cleanupStale, createBtrfs } from '../helpers/backends';
import { BtrfsVolumeBackend } from '../../src/volumes/backends/btrfs';
import { volumeSuite } from './harness';

volumeSuite('volumes: btrfs subvolumes', async () => {
  const missing = await backendMissing('btrfs');
  if (missing) return missing;
  await cleanupStale();
  const be = await createBtrfs({ quota: false }); // the backend enables quotas itself when a limit is asked
  const root = path.join(be.mountpoint, 'strata');
  fs.mkdirSync(root);
  return { root, backend: () => new BtrfsVolumeBackend(path.join(root, 'volumes')), limits: true, cleanup: () => be.cleanup() };
});
