/** snapctl usage [KEY]: disk usage of one snapshot's own layer, or of every snapshot with a total. */
import type { Kind } from '../../core/types';
import type { Command } from '../command';
import { humanSize, json, table, wantsJson } from '../format';
import { parse, withClients } from './common';

interface Row {
  name: string;
  kind: Kind | '';
  size: number;
  inodes: number;
}

/** A walk per active snapshot can be slow; a few at a time keeps the daemon responsive to containerd. */
const PARALLEL = 4;

export const command: Command = {
  name: ['usage'],
  summary: 'disk usage of a snapshot, or of all of them',
  usage: 'snapctl usage [KEY] [--bytes] [--json]',
  async run(argv, io) {
    const { values, positionals } = parse(argv, { bytes: { type: 'boolean', short: 'b' } }, { min: 0, max: 1 });
    const rows = await withClients(io, async (c): Promise<Row[]> => {
      const key = positionals[0];
      if (key !== undefined) {
        const u = await c.snapshots.usage(key);
        return [{ name: key, kind: '', ...u }];
      }
      const infos = await c.snapshots.list();
      const out: Row[] = new Array(infos.length);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < infos.length) {
          const i = next++;
          const info = infos[i]!;
          out[i] = { name: info.name, kind: info.kind, ...(await c.snapshots.usage(info.name)) };
        }
      };
      await Promise.all(Array.from({ length: Math.min(PARALLEL, infos.length) }, worker));
      return out;
    });
    if (wantsJson(io)) {
      io.stdout.write(json(positionals[0] !== undefined ? { name: rows[0]!.name, size: rows[0]!.size, inodes: rows[0]!.inodes } : rows));
      return 0;
    }
    const size = (n: number): string => (values.bytes ? String(n) : humanSize(n));
    if (positionals[0] !== undefined) {
      io.stdout.write(table(['NAME', 'SIZE', 'INODES'], [[rows[0]!.name, size(rows[0]!.size), String(rows[0]!.inodes)]]));
      return 0;
    }
    const total = rows.reduce((a, r) => ({ size: a.size + r.size, inodes: a.inodes + r.inodes }), { size: 0, inodes: 0 });
    io.stdout.write(
      table(
        ['NAME', 'KIND', 'SIZE', 'INODES'],
        [...rows.map((r) => [r.name, r.kind, size(r.size), String(r.inodes)]), ['TOTAL', '', size(total.size), String(total.inodes)]],
      ),
    );
    return 0;
  },
};
