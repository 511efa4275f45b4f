/** snapctl volume path NAME: the host path to bind-mount. */
import type { Command } from '../command';
import { json, wantsJson } from '../format';
import { parse } from './common';
import { withVolumes } from './volume-common';

export const command: Command = {
  name: ['volume', 'path'],
  summary: "print a volume's host path",
  usage: 'snapctl volume path NAME [--json]',
  async run(argv, io) {
    const { positionals } = parse(argv, {}, { min: 1, max: 1 });
    const v = await withVolumes(io, (c) => c.inspect(positionals[0]!));
    io.stdout.write(wantsJson(io) ? json({ name: v.name, path: v.path }) : `${v.path}\n`);
    return 0;
  },
};
