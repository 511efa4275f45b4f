/** snapctl info KEY: everything strata knows about one snapshot (strata.v1.Admin/Info). */
import type { SnapshotDetail } from '../../client/admin';
import type { Command } from '../command';
import { humanAge, humanSize, json, keyValues, wantsJson } from '../format';
import { parse, withClients } from './common';

export function describe(d: SnapshotDetail, now = new Date()): string {
  const pairs: [string, string][] = [
    ['Name', d.name],
    ['ID', String(d.id)],
    ['Kind', d.kind],
    ['Parent', d.parents[0] ? `${d.parents[0].name} (#${d.parents[0].id})` : '-'],
    ['Depth', String(d.parents.length)],
    ['Path', d.path ? d.path + (d.pathHoldsChanges ? ' (the layer\'s own changes: 0/0 devices are deletions)' : '') : '-'],
    [
      'Usage',
      d.usage ? `${humanSize(d.usage.size)} (${d.usage.size} bytes), ${d.usage.inodes} inodes, by ${d.usage.method}` : d.usageError ? `unknown: ${d.usageError}` : '-',
    ],
    ['Size limit', d.sizeLimit > 0 ? `${humanSize(d.sizeLimit)} (${d.sizeLimit} bytes)` : 'none'],
    ['Created', `${d.created.toISOString()} (${humanAge(d.created, now)})`],
    ['Updated', `${d.updated.toISOString()} (${humanAge(d.updated, now)})`],
  ];
  const labels = Object.entries(d.labels).sort(([a], [b]) => a.localeCompare(b));
  labels.forEach(([k, v], i) => pairs.push([i === 0 ? 'Labels' : '', `${k}=${v}`]));
  if (!labels.length) pairs.push(['Labels', '-']);
  d.mounts.forEach((m, i) => pairs.push([i === 0 ? 'Mounts' : '', `${m.type} ${m.source} ${m.options.join(',')}`]));
  if (d.parents.length > 1) d.parents.forEach((p, i) => pairs.push([i === 0 ? 'Chain' : '', `#${p.id} ${p.name}`]));
  return keyValues(pairs);
}

export const command: Command = {
  name: ['info'],
  summary: 'show one snapshot in detail: id, kind, parent chain, path, usage, size limit, mounts',
  usage: 'snapctl info KEY [--no-usage] [--json]',
  async run(argv, io) {
    const { values, positionals } = parse(argv, { 'no-usage': { type: 'boolean' } }, { min: 1, max: 1 });
    const d = await withClients(io, (c) => c.admin.info(positionals[0]!, { skipUsage: values['no-usage'] ?? false }));
    io.stdout.write(wantsJson(io) ? json(d) : describe(d));
    return 0;
  },
};
