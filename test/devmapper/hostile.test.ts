/**
 * The unpacker's hostile corpus (test/unpack/) applied onto a devmapper layer: the corpus's working directories
 * are made on an ext4/XFS filesystem on a dm-thin snapshot, the apply target the driver hands the unpacker
 * (openApplyTarget, delete-style whiteouts). The lane runs it with --test-name-pattern="delete whiteouts".
 * Only inside the dm VM; elsewhere the corpus runs on the host's filesystems from test/unpack/ itself.
 */
import { after, before } from 'node:test';
import type { ApplyTarget, Driver } from '../../drivers/driver';
import { create } from '../../drivers/devmapper/index';
import { dmMissing, ownedRoot, type OwnedRoot } from './pool';

const skip = dmMissing();
let r: OwnedRoot | undefined;
let d: Driver | undefined;
let target: ApplyTarget | undefined;

if (!skip) {
  before(async () => {
    r = ownedRoot({ base_size: '1G' }, 'hostile');
    d = create({ root: r.root, config: r.config });
    await d.init();
    await d.create({ id: 1, kind: 'active', parents: [] }, {});
    target = await d.openApplyTarget({ id: 1, kind: 'active', parents: [] });
    if (target.whiteouts !== 'delete') throw new Error(`devmapper applies ${target.whiteouts} whiteouts`);
    // os.tmpdir() is read at each call: every case's directories now live on the thin device.
    process.env.TMPDIR = target.dir;
  });
  after(async () => {
    delete process.env.TMPDIR;
    await target?.release().catch((e: Error) => console.error(e.message));
    await d?.remove(1).catch((e: Error) => console.error(e.message));
    await d?.close().catch(() => undefined);
    await r?.teardown().catch((e: Error) => console.error(e.message));
  });
  require('../unpack/hostile.test');
}

if (skip) {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('node:test').test('hostile corpus on a devmapper thin device', { skip }, () => undefined);
}
