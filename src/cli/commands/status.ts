/** snapctl status: the daemon's driver, root, snapshot counts and background reclaim backlog. */
import type { DaemonStatus } from '../../client/admin';
import type { Command } from '../command';
import { humanAge, json, keyValues, wantsJson } from '../format';
import { parse, withClients } from './common';

export function describeStatus(s: DaemonStatus, now = new Date()): string {
  const pairs: [string, string][] = [
    ['Address', s.address],
    ['Root', s.root],
    ['Driver', s.driver],
    ['Version', s.version || '-'],
    ['PID', String(s.pid)],
    ['Started', s.started.getTime() > 0 ? `${s.started.toISOString()} (${humanAge(s.started, now)})` : '-'],
    ['Snapshots', `${s.counts.committed} committed, ${s.counts.active} active, ${s.counts.views} views`],
    ['Pending reclaims', String(s.pendingReclaims)],
  ];
  const facts = Object.entries(s.driverStatus).sort(([a], [b]) => a.localeCompare(b));
  facts.forEach(([k, v], i) => pairs.push([i === 0 ? 'Driver status' : '', `${k}: ${v}`]));
  return keyValues(pairs);
}

export const command: Command = {
  name: ['status'],
  summary: "the daemon's driver, root, snapshot counts and reclaim backlog",
  usage: 'snapctl status [--json]',
  async run(argv, io) {
    parse(argv, {}, { min: 0, max: 0 });
    const s = await withClients(io, (c) => c.admin.status());
    io.stdout.write(wantsJson(io) ? json(s) : describeStatus(s));
    return 0;
  },
};
