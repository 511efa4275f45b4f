/** snapctl volume rm NAME... [--force]: remove volumes; refused while mounted unless forced. */
import type { Command } from '../command';
import { json, wantsJson } from '../format';
import { parse, reportError } from './common';
import { withVolumes } from './volume-common';

export const command: Command = {
  name: ['volume', 'rm'],
  summary: 'remove volumes (refused while mounted, unless --force)',
  usage: `snapctl volume rm NAME... [--force] [--json]
  Removes each NAME in order, goes on after a failure, and exits with the code of the last failure.`,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { force: { type: 'boolean', short: 'f' } }, { min: 1, max: Infinity });
    let code = 0;
    const removed: string[] = [];
    await withVolumes(io, async (c) => {
      for (const name of positionals) {
        try {
          await c.remove(name, values.force ?? false);
          removed.push(name);
          if (!wantsJson(io)) io.stdout.write(`${name}\n`);
        } catch (e) {
          code = await reportError(e, io);
        }
      }
    });
    if (wantsJson(io)) io.stdout.write(json({ removed }));
    return code;
  },
};
