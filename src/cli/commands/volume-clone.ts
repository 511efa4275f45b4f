/** snapctl volume clone SOURCE NAME [--size N]: a writable copy. */
import { parseSize } from '../../volumes/names';
import type { Command } from '../command';
import { json, wantsJson } from '../format';
import { parse, parseLabels, UsageError } from './common';
import { withVolumes } from './volume-common';

export const command: Command = {
  name: ['volume', 'clone'],
  summary: 'make a writable copy of a volume (keeps its size limit unless --size)',
  usage: 'snapctl volume clone SOURCE NAME [--size SIZE] [--label KEY=VALUE]... [--json]',
  async run(argv, io) {
    const { values, positionals } = parse(argv, { size: { type: 'string' }, label: { type: 'string', multiple: true } }, { min: 2, max: 2 });
    let size = 0;
    try {
      if (values.size !== undefined) size = parseSize(values.size, '--size');
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const v = await withVolumes(io, (c) => c.clone(positionals[0]!, positionals[1]!, size, parseLabels(values.label ?? [])));
    io.stdout.write(wantsJson(io) ? json(v) : `${v.path}\n`);
    return 0;
  },
};
