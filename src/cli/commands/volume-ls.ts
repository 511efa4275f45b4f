/** snapctl volume ls [--label k=v]...: every volume, one line each. */
import type { Command } from '../command';
import { humanAge, humanSize, json, table, wantsJson } from '../format';
import { parse, parseLabels } from './common';
import { withVolumes } from './volume-common';

export const command: Command = {
  name: ['volume', 'ls'],
  summary: 'list persistent volumes',
  usage: 'snapctl volume ls [--label KEY=VALUE]... [--quiet] [--json]',
  async run(argv, io) {
    const { values } = parse(argv, { label: { type: 'string', multiple: true }, quiet: { type: 'boolean', short: 'q' } }, { min: 0, max: 0 });
    const vols = await withVolumes(io, (c) => c.list(parseLabels(values.label ?? [])));
    if (wantsJson(io)) {
      io.stdout.write(json(vols));
      return 0;
    }
    if (values.quiet) {
      io.stdout.write(vols.map((v) => `${v.name}\n`).join(''));
      return 0;
    }
    io.stdout.write(
      table(
        ['NAME', 'BACKEND', 'SIZE LIMIT', 'MODE', 'ORIGIN', 'MOUNTS', 'CREATED', 'STATE'],
        vols.map((v) => [
          v.name,
          v.backend,
          v.sizeLimit > 0 ? humanSize(v.sizeLimit) : '-',
          v.readonly ? 'ro' : 'rw',
          v.origin ? `${v.origin.kind}:${v.origin.name}` : '-',
          String(Object.keys(v.refs).length),
          humanAge(v.created),
          v.state,
        ]),
      ),
    );
    return 0;
  },
};
