/** snapctl commit NAME KEY: turn active KEY into committed NAME. */
import type { Command } from '../command';
import { json, wantsJson } from '../format';
import { parse, parseLabels, withClients } from './common';

export const command: Command = {
  name: ['commit'],
  summary: 'commit an active snapshot under a new name',
  usage: `snapctl commit NAME KEY [--label k=v]... [--json]
  Like containerd, the labels given here replace the active snapshot's labels.`,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { label: { type: 'string', short: 'l', multiple: true } }, { min: 2, max: 2 });
    const [name, key] = positionals as [string, string];
    const labels = parseLabels(values.label ?? []);
    await withClients(io, (c) => c.snapshots.commit(name, key, labels));
    io.stdout.write(wantsJson(io) ? json({ name, key }) : `${name}\n`);
    return 0;
  },
};
