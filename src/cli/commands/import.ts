/**
 * snapctl import IMAGE: every layer of an image (OCI layout dir, OCI archive, docker save tarball) into
 * committed snapshots named by chain ID, skipping those already present. Blobs inside an archive are applied in
 * place (a byte range of the archive file), never extracted first.
 */
import * as path from 'node:path';
import { LayersApiClient } from '../../client/layers';
import { SnapshotsApiClient } from '../../client/snapshots';
import type { Command } from '../command';
import { json, wantsJson } from '../format';
import { readImage } from '../../unpack/image';
import { formatBytes, formatRate } from '../../unpack/format';
import { addressOf, parse } from './common';

async function exists(c: SnapshotsApiClient, key: string): Promise<boolean> {
  try {
    await c.stat(key);
    return true;
  } catch (e) {
    if ((e as { code?: number }).code === 5 /* NOT_FOUND */) return false;
    throw e;
  }
}

export const command: Command = {
  name: ['import'],
  summary: 'unpack every layer of an image into committed snapshots named by chain ID',
  usage: `snapctl import IMAGE
  IMAGE: an OCI image layout directory, an OCI archive (.tar) or a docker save tarball. Layers already present
  are skipped. A progress bar on a terminal, one line per layer otherwise.`,
  async run(argv, io) {
    const { positionals } = parse(argv, {}, { min: 1, max: 1 });
    const image = readImage(path.resolve(positionals[0] as string));
    const address = addressOf(io);
    const layers = new LayersApiClient(address);
    const snaps = new SnapshotsApiClient(address);
    const tty = io.stdout.isTTY === true && !wantsJson(io);
    const total = image.layers.reduce((a, l) => a + l.length, 0);
    const t0 = performance.now();
    let done = 0;
    const results: Array<{ chainId: string; diffId: string; skipped: boolean; bytes: number; entries: number; ms: number }> = [];
    const bar = (n: number, label: string): void => {
      const width = 30;
      const frac = total > 0 ? done / total : 1;
      const fill = Math.round(frac * width);
      const secs = (performance.now() - t0) / 1000;
      io.stdout.write(`\r[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] layer ${n}/${image.layers.length} ${formatBytes(done)}/${formatBytes(total)} ${(done / 1e6 / Math.max(secs, 0.001)).toFixed(0)} MB/s ${label}\x1b[K`);
    };
    try {
      let parent = '';
      for (const [i, l] of image.layers.entries()) {
        const n = i + 1;
        if (await exists(snaps, l.chainId)) {
          results.push({ chainId: l.chainId, diffId: l.diffId, skipped: true, bytes: 0, entries: 0, ms: 0 });
          done += l.length;
          if (tty) bar(n, 'present');
          else if (!wantsJson(io)) io.stdout.write(`layer ${n}/${image.layers.length} ${l.chainId} already present\n`);
          parent = l.chainId;
          continue;
        }
        if (tty) bar(n, 'unpacking');
        const r = await layers.unpack({ name: l.chainId, parent, layerPath: l.file, offset: l.offset, length: l.length, diffId: l.diffId });
        done += l.length;
        results.push({ chainId: l.chainId, diffId: r.diffId, skipped: false, bytes: r.bytes, entries: r.entries, ms: r.durationMs });
        if (tty) bar(n, 'done');
        else if (!wantsJson(io)) io.stdout.write(`layer ${n}/${image.layers.length} ${l.chainId} ${r.entries} entries, ${formatRate(r.bytes, r.durationMs)}\n`);
        parent = l.chainId;
      }
    } finally {
      if (tty) io.stdout.write('\n');
      layers.close();
      snaps.close();
    }
    if (wantsJson(io)) io.stdout.write(json({ image: image.name, format: image.format, layers: results }));
    else io.stdout.write(`${image.name || 'image'}: ${image.layers.length} layers (${results.filter((r) => r.skipped).length} present), top ${image.layers[image.layers.length - 1]?.chainId ?? '-'}\n`);
    return 0;
  },
};
