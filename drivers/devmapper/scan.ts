/**
 * The thin ids a live pool holds, read with thin_ls from a metadata snapshot (the kernel keeps writing the live
 * metadata, so tools may only read a snapshot of it). Used once at start to find rows whose device is gone.
 */
import * as fs from 'node:fs';
import { internal } from '../../src/core/errors';
import { isDmError, run } from './exec';
import type { Pool } from './pool';

/** The /dev node of a "major:minor" (the form dmsetup table prints), through sysfs: devtmpfs has it, no udev needed. */
function nodeOf(dev: string): string {
  if (dev.startsWith('/')) return dev;
  const uevent = fs.readFileSync(`/sys/dev/block/${dev}/uevent`, 'utf8');
  const name = /^DEVNAME=(.+)$/m.exec(uevent)?.[1];
  if (!name) throw internal(`devmapper: no device name for ${dev} in sysfs`);
  return `/dev/${name}`;
}

export async function scanPool(pool: Pool): Promise<Set<number>> {
  const meta = nodeOf((await pool.table()).metadataDev);
  try {
    await pool.message('reserve_metadata_snap');
  } catch (e) {
    // A snapshot a crash left reserved: drop it and take a fresh one.
    if (!isDmError(e, /busy|exists/i)) throw e;
    await pool.message('release_metadata_snap');
    await pool.message('reserve_metadata_snap');
  }
  try {
    const out = await run('thin_ls', ['-m', '--no-headers', '-o', 'DEV', meta]);
    const ids = new Set<number>();
    for (const line of out.split('\n')) if (/^\s*\d+\s*$/.test(line)) ids.add(Number(line));
    return ids;
  } finally {
    await pool.message('release_metadata_snap');
  }
}
