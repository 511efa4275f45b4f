/** snapctl ls: every snapshot (or those matching containerd filters), one line each. */
import type { Command } from '../command';
import { humanAge, json, table, wantsJson } from '../format';
import { parse, withClients } from './common';

export const command: Command = {
  name: ['ls'],
  summary: 'list snapshots',
  usage: `snapctl ls [--filter FILTER]... [--quiet] [--json]
  FILTER is containerd's syntax: name==x, kind==committed, parent==p, labels."k"==v; ',' is AND,
  several --filter are OR. --quiet prints names only.`,
  async run(argv, io) {
    const { values } = parse(argv, { filter: { type: 'string', short: 'f', multiple: true }, quiet: { type: 'boolean', short: 'q' } }, { min: 0, max: 0 });
    const infos = await withClients(io, (c) => c.snapshots.list(values.filter ?? []));
    if (wantsJson(io)) io.stdout.write(json(infos));
    else if (values.quiet) io.stdout.write(infos.map((i) => i.name + '\n').join(''));
    else {
      const now = new Date();
      io.stdout.write(table(['NAME', 'KIND', 'PARENT', 'CREATED'], infos.map((i) => [i.name, i.kind, i.parent, humanAge(i.created, now)])));
    }
    return 0;
  },
};
