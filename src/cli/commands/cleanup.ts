/** snapctl cleanup: ask the daemon to reclaim storage no snapshot owns (what containerd's GC calls last). */
import type { Command } from '../command';
import { json, wantsJson } from '../format';
import { parse, withClients } from './common';

export const command: Command = {
  name: ['cleanup'],
  summary: 'reclaim storage that no snapshot owns (orphans, work a crash left half-done)',
  usage: 'snapctl cleanup [--json]',
  async run(argv, io) {
    parse(argv, {}, { min: 0, max: 0 });
    const pending = await withClients(io, async (c) => {
      await c.snapshots.cleanup();
      // Status is informative only: an older daemon without the Admin service still cleans up.
      return c.admin.status().then((s) => s.pendingReclaims, () => undefined);
    });
    if (wantsJson(io)) io.stdout.write(json({ ok: true, pendingReclaims: pending ?? null }));
    else io.stdout.write(pending === undefined ? 'cleanup done\n' : `cleanup done; ${pending} removed snapshot(s) still being reclaimed\n`);
    return 0;
  },
};
