/** snapctl unpack NAME LAYER: through the daemon, apply one layer on top of a parent and commit it as NAME. */
import * as path from 'node:path';
import { LayersApiClient } from '../../client/layers';
import type { Command } from '../command';
import { json, wantsJson } from '../format';
import { formatRate } from '../../unpack/format';
import { addressOf, parse, parseLabels } from './common';

export const command: Command = {
  name: ['unpack'],
  summary: 'apply a layer blob on top of a parent snapshot and commit it (daemon)',
  usage: `snapctl unpack [--parent KEY] [--diff-id sha256:...] [--label k=v]... NAME LAYER
  LAYER is a path on the daemon's host: tar, tar+gzip or tar+zstd (detected by content). On any failure the
  snapshot is discarded, never committed.`,
  async run(argv, io) {
    const { values, positionals } = parse(
      argv,
      { parent: { type: 'string', default: '' }, 'diff-id': { type: 'string' }, label: { type: 'string', short: 'l', multiple: true } },
      { min: 2, max: 2 },
    );
    const [name, layer] = positionals as [string, string];
    const client = new LayersApiClient(addressOf(io));
    try {
      const r = await client.unpack({ name, parent: values.parent, layerPath: path.resolve(layer), diffId: values['diff-id'], labels: parseLabels(values.label ?? []) });
      if (wantsJson(io)) io.stdout.write(json(r));
      else io.stdout.write(`${r.name}\n${r.diffId}\n${r.entries} entries, ${formatRate(r.bytes, r.durationMs)} (${r.compression}, sync ${r.syncMs.toFixed(0)} ms)\n`);
      return 0;
    } finally {
      client.close();
    }
  },
};
