/** snapctl volume snapshot SOURCE NAME: a read-only point-in-time copy. */
import type { Command } from '../command';
import { json, wantsJson } from '../format';
import { parse, parseLabels } from './common';
import { withVolumes } from './volume-common';

export const command: Command = {
  name: ['volume', 'snapshot'],
  summary: 'make a read-only point-in-time snapshot of a volume',
  usage: 'snapctl volume snapshot SOURCE NAME [--label KEY=VALUE]... [--json]',
  async run(argv, io) {
    const { values, positionals } = parse(argv, { label: { type: 'string', multiple: true } }, { min: 2, max: 2 });
    const v = await withVolumes(io, (c) => c.snapshot(positionals[0]!, positionals[1]!, parseLabels(values.label ?? [])));
    io.stdout.write(wantsJson(io) ? json(v) : `${v.path}\n`);
    return 0;
  },
};
