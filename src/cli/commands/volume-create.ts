/** snapctl volume create NAME [--size N] [--label k=v]... [--snapshot-of V | --clone-of V] */
import { parseSize } from '../../volumes/names';
import type { Command } from '../command';
import { json, wantsJson } from '../format';
import { parse, parseLabels, UsageError } from './common';
import { withVolumes } from './volume-common';

export const command: Command = {
  name: ['volume', 'create'],
  summary: 'create a persistent volume (optionally size-limited, or a snapshot/clone of another)',
  usage: `snapctl volume create NAME [--size SIZE] [--label KEY=VALUE]... [--snapshot-of VOLUME | --clone-of VOLUME] [--json]
  SIZE takes binary units: 64M = 64 MiB, 10G. Prints the volume's path.`,
  async run(argv, io) {
    const { values, positionals } = parse(
      argv,
      {
        size: { type: 'string' },
        label: { type: 'string', multiple: true },
        'snapshot-of': { type: 'string' },
        'clone-of': { type: 'string' },
      },
      { min: 1, max: 1 },
    );
    let sizeLimit = 0;
    if (values.size !== undefined) {
      try {
        sizeLimit = parseSize(values.size, '--size');
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    }
    const v = await withVolumes(io, (c) =>
      c.create({
        name: positionals[0]!,
        sizeLimit,
        labels: parseLabels(values.label ?? []),
        snapshotOf: values['snapshot-of'],
        cloneOf: values['clone-of'],
      }),
    );
    io.stdout.write(wantsJson(io) ? json(v) : `${v.path}\n`);
    return 0;
  },
};
