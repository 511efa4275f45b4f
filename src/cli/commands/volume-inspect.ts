/** snapctl volume inspect NAME...: everything strata knows about volumes. */
import type { Volume } from '../../volumes/types';
import type { Command } from '../command';
import { json, wantsJson } from '../format';
import { parse } from './common';
import { describeVolume, withVolumes } from './volume-common';

export const command: Command = {
  name: ['volume', 'inspect'],
  summary: 'show volumes in detail: path, backend, limit, origin, labels, mount references',
  usage: 'snapctl volume inspect NAME... [--json]',
  async run(argv, io) {
    const { positionals } = parse(argv, {}, { min: 1, max: Infinity });
    const vols = await withVolumes(io, async (c) => {
      const out: Volume[] = [];
      for (const n of positionals) out.push(await c.inspect(n));
      return out;
    });
    io.stdout.write(wantsJson(io) ? json(positionals.length === 1 ? vols[0] : vols) : vols.map((v) => describeVolume(v)).join('\n'));
    return 0;
  },
};
