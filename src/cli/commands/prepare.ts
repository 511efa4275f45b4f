/** snapctl prepare / view: create an active or a read-only view snapshot and print its mounts. */
import type { Mount } from '../../core/types';
import type { CliIO, Command } from '../command';
import { json, wantsJson } from '../format';
import { mountsTable } from './mounts';
import { parse, parseLabels, withClients } from './common';

function makeCommand(kind: 'prepare' | 'view'): Command {
  return {
    name: [kind],
    summary: kind === 'prepare' ? 'create an active (writable) snapshot' : 'create a read-only view snapshot',
    usage: `snapctl ${kind} KEY [PARENT] [--label k=v]... [--json]`,
    async run(argv: string[], io: CliIO): Promise<number> {
      const { values, positionals } = parse(argv, { label: { type: 'string', short: 'l', multiple: true } }, { min: 1, max: 2 });
      const [key, parent = ''] = positionals as [string, string?];
      const labels = parseLabels(values.label ?? []);
      const mounts: Mount[] = await withClients(io, (c) => (kind === 'prepare' ? c.snapshots.prepare(key, parent, labels) : c.snapshots.view(key, parent, labels)));
      io.stdout.write(wantsJson(io) ? json({ key, parent, kind: kind === 'prepare' ? 'active' : 'view', mounts }) : mountsTable(mounts));
      return 0;
    },
  };
}

export const command = makeCommand('prepare');
export const viewCommand = makeCommand('view');
