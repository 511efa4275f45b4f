/** The volume suite on ZFS datasets (a zfs-fuse pool on an image file, refquota limits). */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../src/core/log';
import { MetadataStore } from '../../src/metadata/store';
import { ZfsVolumeBackend } from '../../src/volumes/backends/zfs';
import { VolumeEngine } from '../../src/volumes/engine';
import { backendMissing, cleanupStale, createZfsPool, type ZfsBackend } from '../helpers/backends';
import { expectCode, tmpRoot, volumeSuite } from './harness';

volumeSuite('volumes: zfs datasets', async () => {
  const missing = await backendMissing('zfs');
  if (missing) return missing;
  await cleanupStale();
  const pool = await createZfsPool();
  const root = tmpRoot();
  return {
    root,
    backend: () => new ZfsVolumeBackend(path.join(fs.realpathSync(root), 'volumes'), pool.dataset),
    limits: true,
    cleanup: async () => {
      await pool.cleanup();
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
});

describe('volumes: zfs copies depend on their origin', () => {
  let pool: ZfsBackend | undefined;
  let skip: string | undefined;
  let root = '';
  let store: MetadataStore | undefined;
  before(async () => {
    skip = await backendMissing('zfs');
    if (skip) return;
    pool = await createZfsPool();
    root = tmpRoot();
  });
  after(async () => {
    store?.close();
    await pool?.cleanup();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it('refuses to remove an origin while its snapshot exists, then removes both', async (t) => {
    if (!pool) return t.skip(skip);
    store = new MetadataStore(path.join(root, 'metadata.db'));
    const engine = await VolumeEngine.open({
      root,
      store,
      backend: new ZfsVolumeBackend(path.join(fs.realpathSync(root), 'volumes'), pool.dataset),
      log: silentLogger,
    });
    await engine.create({ name: 'origin' });
    await engine.snapshot('origin', 'origin-snap');
    await expectCode(engine.remove('origin'), 'FailedPrecondition', /origin-snap/);
    assert.ok(engine.inspect('origin'));
    await engine.remove('origin-snap');
    await engine.remove('origin');
    assert.deepEqual(engine.list(), []);
  });
});
