/**
 * snapctl diff KEY: the changes of a snapshot against its parent as an OCI layer. The daemon writes it to a path
 * (no layer bytes through gRPC); for stdout snapctl gives it a FIFO in a private directory and copies from it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { native } from '../../../native';
import { LayersApiClient, type DiffSummary } from '../../client/layers';
import type { Command } from '../command';
import { json, wantsJson } from '../format';
import { formatRate } from '../../unpack/format';
import { addressOf, parse, UsageError } from './common';

const S_IFIFO = 0o010000;

export const command: Command = {
  name: ['diff'],
  summary: 'write the changes of a snapshot against its parent as an OCI layer',
  usage: `snapctl diff KEY [-o FILE] [--compress gzip|zstd|none]
  Deletions become whiteouts, replaced directories opaque markers; hardlinks stay links. Without -o the layer
  goes to stdout. Overlay's layers and native's unpacked layers are read as their own change set; anything
  else is compared with its parent's tree.`,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { output: { type: 'string', short: 'o' }, compress: { type: 'string', default: 'none' } }, { min: 1, max: 1 });
    const [key] = positionals as [string];
    const compression = values.compress;
    if (compression !== 'gzip' && compression !== 'zstd' && compression !== 'none') throw new UsageError('--compress is gzip, zstd or none');
    const client = new LayersApiClient(addressOf(io));
    let r: DiffSummary;
    try {
      if (values.output) {
        r = await client.diff(key, path.resolve(values.output), compression);
      } else {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'snapctl-diff-'));
        const fifo = path.join(dir, 'layer');
        try {
          native().mknodat(-100, fifo, S_IFIFO | 0o600, 0, 0);
          const call = client.diff(key, fifo, compression);
          // Opening the read side unblocks the daemon's open of the write side.
          const copy = pipeline(fs.createReadStream(fifo, { highWaterMark: 1 << 20 }), io.stdout, { end: false });
          r = await call;
          await copy;
        } finally {
          fs.rmSync(dir, { recursive: true, force: true });
        }
      }
    } finally {
      client.close();
    }
    const summary = wantsJson(io) ? json(r) : `${r.diffId} (${r.entries} entries, ${compression} ${r.digest}, ${formatRate(r.size, r.durationMs)})\n`;
    // With the layer on stdout, the summary goes to stderr.
    (values.output ? io.stdout : io.stderr).write(summary);
    return 0;
  },
};
