/** snapctl label KEY k=v...: set labels (an empty value removes the label), leaving the others alone. */
import type { Labels } from '../../core/types';
import type { Command } from '../command';
import { json, keyValues, wantsJson } from '../format';
import { parse, parseLabels, UsageError, withClients } from './common';

export const command: Command = {
  name: ['label'],
  summary: 'set or remove labels of a snapshot',
  usage: `snapctl label KEY k=v... [--json]
  k= (empty value) removes label k. Prints the snapshot's labels afterwards.`,
  async run(argv, io) {
    const { positionals } = parse(argv, {}, { min: 2, max: Infinity });
    const [key, ...words] = positionals as [string, ...string[]];
    const given = parseLabels(words);
    if (!Object.keys(given).length) throw new UsageError('no labels given');
    // A field path `labels.k` with k absent from the labels sent removes k: containerd's Update semantics.
    const labels: Labels = {};
    for (const [k, v] of Object.entries(given)) if (v !== '') labels[k] = v;
    const info = await withClients(io, (c) => c.snapshots.update(key, labels, Object.keys(given).map((k) => `labels.${k}`)));
    if (wantsJson(io)) io.stdout.write(json(info));
    else {
      const entries = Object.entries(info.labels).sort(([a], [b]) => a.localeCompare(b));
      io.stdout.write(entries.length ? keyValues(entries.map(([k, v]) => [k, v])) : '');
    }
    return 0;
  },
};
