/** snapctl volume usage [NAME]: space used by one volume, or by all with a total. */
import type { Command } from '../command';
import { humanSize, json, table, wantsJson } from '../format';
import { parse } from './common';
import { withVolumes } from './volume-common';

interface Row {
  name: string;
  size: number;
  inodes: number;
  limit: number;
  method: string;
}

export const command: Command = {
  name: ['volume', 'usage'],
  summary: 'disk usage of a volume, or of all of them',
  usage: 'snapctl volume usage [NAME] [--bytes] [--json]',
  async run(argv, io) {
    const { values, positionals } = parse(argv, { bytes: { type: 'boolean', short: 'b' } }, { min: 0, max: 1 });
    const rows = await withVolumes(io, async (c): Promise<Row[]> => {
      const names = positionals[0] !== undefined ? [positionals[0]] : (await c.list()).filter((v) => v.state === 'ready').map((v) => v.name);
      const out: Row[] = [];
      for (const name of names) out.push({ name, ...(await c.usage(name)) });
      return out;
    });
    if (wantsJson(io)) {
      io.stdout.write(json(positionals[0] !== undefined ? rows[0] : rows));
      return 0;
    }
    const size = (n: number): string => (values.bytes ? String(n) : humanSize(n));
    const lines = rows.map((r) => [r.name, size(r.size), r.limit > 0 ? size(r.limit) : '-', r.limit > 0 ? `${Math.round((100 * r.size) / r.limit)}%` : '-', String(r.inodes), r.method]);
    if (positionals[0] === undefined) {
      const total = rows.reduce((a, r) => a + r.size, 0);
      lines.push(['TOTAL', size(total), '', '', String(rows.reduce((a, r) => a + r.inodes, 0)), '']);
    }
    io.stdout.write(table(['NAME', 'USED', 'LIMIT', 'USE%', 'INODES', 'METHOD'], lines));
    return 0;
  },
};
