/** snapctl apply LAYER DIR: apply one layer into a plain directory, no daemon (debugging, comparing with tar). */
import type { Command } from '../command';
import { json, wantsJson } from '../format';
import { applyLayer, setUnpackMallocPolicy } from '../../unpack/engine';
import { toStrata } from '../../unpack/errors';
import { parse, UsageError } from './common';
import { formatRate } from '../../unpack/format';

export const command: Command = {
  name: ['apply'],
  summary: 'apply a layer (tar, tar+gzip, tar+zstd) into a directory, without the daemon',
  usage: `snapctl apply LAYER DIR [--whiteouts overlay|delete] [--parents DIR[:DIR...]] [--userxattr]
                [--diff-id sha256:...] [--sync syncfs|fsync|none] [--json]
  --whiteouts  overlay: whiteouts become 0/0 character devices and opaque dirs get trusted.overlay.opaque=y
               (user.overlay.* with --userxattr); delete (default): remove the named paths from DIR.
  --parents    overlay form: the lower layers' directories, nearest first (implicit dirs copy their metadata).`,
  async run(argv, io) {
    const { values, positionals } = parse(
      argv,
      {
        whiteouts: { type: 'string', default: 'delete' },
        parents: { type: 'string' },
        userxattr: { type: 'boolean', default: false },
        'diff-id': { type: 'string' },
        sync: { type: 'string', default: 'syncfs' },
      },
      { min: 2, max: 2 },
    );
    const [layer, dir] = positionals as [string, string];
    const whiteouts = values.whiteouts;
    if (whiteouts !== 'overlay' && whiteouts !== 'delete') throw new UsageError('--whiteouts is overlay or delete');
    const sync = values.sync;
    if (sync !== 'syncfs' && sync !== 'fsync' && sync !== 'none') throw new UsageError('--sync is syncfs, fsync or none');
    if (values.parents && whiteouts !== 'overlay') throw new UsageError('--parents only means something with --whiteouts overlay');
    setUnpackMallocPolicy();
    try {
      const r = await applyLayer({
        layer: layer === '-' ? process.stdin : layer,
        root: dir,
        whiteouts,
        userxattr: values.userxattr,
        lowerDirs: values.parents ? values.parents.split(':').filter(Boolean) : [],
        diffId: values['diff-id'],
        sync,
      });
      if (wantsJson(io)) {
        io.stdout.write(json({ diffId: r.diffId, compression: r.compression, compressedBytes: r.compressedBytes, bytes: r.uncompressedBytes, entries: r.entries, durationMs: Math.round(r.durationMs), syncMs: Math.round(r.stats.syncMs), inputWaitMs: Math.round(r.stats.inputWaitMs), writerWaitMs: Math.round(r.stats.writerWaitMs) }));
      } else {
        io.stdout.write(`${r.diffId}\n${r.entries} entries, ${formatRate(r.uncompressedBytes, r.durationMs)} (${r.compression}, sync ${Math.round(r.stats.syncMs)} ms, waited ${Math.round(r.stats.inputWaitMs)} ms for input, ${Math.round(r.stats.writerWaitMs)} ms for the file writer)\n`);
      }
      return 0;
    } catch (e) {
      throw toStrata(e, 'apply');
    }
  },
};
