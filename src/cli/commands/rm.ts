/** snapctl rm KEY...: remove snapshots; storage is reclaimed in the background by the daemon. */
import type { Command } from '../command';
import { json, wantsJson } from '../format';
import { parse, reportError, withClients } from './common';

export const command: Command = {
  name: ['rm'],
  summary: 'remove snapshots (children before parents)',
  usage: `snapctl rm KEY... [--json]
  Removes each KEY in order, goes on after a failure, and exits with the code of the last failure.`,
  async run(argv, io) {
    const { positionals } = parse(argv, {}, { min: 1, max: Infinity });
    let code = 0;
    const removed: string[] = [];
    await withClients(io, async (c) => {
      for (const key of positionals) {
        try {
          await c.snapshots.remove(key);
          removed.push(key);
          if (!wantsJson(io)) io.stdout.write(`${key}\n`);
        } catch (e) {
          code = await reportError(e, io);
        }
      }
    });
    if (wantsJson(io)) io.stdout.write(json({ removed }));
    return code;
  },
};
