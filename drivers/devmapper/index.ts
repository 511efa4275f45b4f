/**
 * devicemapper driver entry: probe and create. Settings from `[driver.devmapper]`:
 *   pool = "name"            an existing thin-pool dm device (production); without it strata makes its own pool
 *                            on loopback files in <root>/devmapper (development and tests) sized by:
 *   data_size = "10G"        sparse data file        metadata_size = "128M"   metadata file
 *   block_size = "64K"       pool data block size (multiple of 64 KiB; only for a pool strata makes)
 *   base_size = "10G"        size of a layer's filesystem (a thin device costs only what it writes)
 *   fs = "ext4" | "xfs"      filesystem on the thin devices
 *   discard = false          blkdiscard a device before deleting it, so the pool's backing storage gets the space
 */
import * as fs from 'node:fs';
import type { Driver, DriverOptions, ProbeResult } from '../driver';
import { invalidArgument } from '../../src/core/errors';
import { parseSize } from '../../src/volumes/names';
import { DevmapperDriver, type DevmapperSettings } from './driver';
import { dmsetup, run } from './exec';
import type { FsType } from './fs';

const POOL_RE = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,100}$/;
const MiB = 1 << 20;

function sizeOf(opts: DriverOptions, key: string, dflt: string): number {
  const v = opts.config[key];
  if (v === undefined) return parseSize(dflt);
  if (typeof v === 'boolean') throw invalidArgument(`[driver.devmapper] ${key} must be a size like "10G"`);
  return parseSize(v, `[driver.devmapper] ${key}`);
}

export function settingsOf(opts: DriverOptions): DevmapperSettings {
  const c = opts.config;
  const known = new Set(['pool', 'data_size', 'metadata_size', 'block_size', 'base_size', 'fs', 'discard']);
  for (const k of Object.keys(c)) if (!known.has(k)) throw invalidArgument(`[driver.devmapper] has no setting ${JSON.stringify(k)} (known: ${[...known].join(', ')})`);
  const pool = c['pool'];
  if (pool !== undefined && (typeof pool !== 'string' || !POOL_RE.test(pool))) throw invalidArgument(`[driver.devmapper] pool ${JSON.stringify(pool)} is not a dm device name`);
  const fsType = c['fs'] ?? 'ext4';
  if (fsType !== 'ext4' && fsType !== 'xfs') throw invalidArgument(`[driver.devmapper] fs must be "ext4" or "xfs", not ${JSON.stringify(fsType)}`);
  const discard = c['discard'] ?? false;
  if (typeof discard !== 'boolean') throw invalidArgument('[driver.devmapper] discard must be true or false');
  const blockBytes = sizeOf(opts, 'block_size', '64K');
  if (blockBytes < 64 * 1024 || blockBytes > 1024 * MiB || blockBytes % (64 * 1024) !== 0) {
    throw invalidArgument('[driver.devmapper] block_size must be a multiple of 64K between 64K and 1G');
  }
  const baseSize = sizeOf(opts, 'base_size', '10G');
  // XFS needs 300 MiB since xfsprogs 5.19; ext4 is happy far lower. Sizes are whole pool blocks.
  const minBase = fsType === 'xfs' ? 300 * MiB : 16 * MiB;
  if (baseSize < minBase) throw invalidArgument(`[driver.devmapper] base_size must be at least ${minBase / MiB}M for ${fsType}`);
  const dataBytes = sizeOf(opts, 'data_size', '10G');
  const metadataBytes = sizeOf(opts, 'metadata_size', '128M');
  if (metadataBytes < 2 * MiB || metadataBytes > 16 * 1024 * MiB) throw invalidArgument('[driver.devmapper] metadata_size must be between 2M and 16G');
  if (dataBytes < blockBytes * 16) throw invalidArgument('[driver.devmapper] data_size is too small');
  return {
    root: opts.root,
    pool: pool as string | undefined,
    owned: { dataBytes, metadataBytes, blockBytes },
    baseSize: Math.ceil(baseSize / blockBytes) * blockBytes,
    fs: fsType,
    discardOnRemove: discard,
  };
}

export async function probe(opts: DriverOptions): Promise<ProbeResult> {
  let s: DevmapperSettings;
  try {
    s = settingsOf(opts);
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
  if (!fs.existsSync('/dev/mapper/control')) return { ok: false, reason: 'this kernel has no device-mapper (/dev/mapper/control is missing)' };
  let targets: string;
  try {
    targets = await dmsetup(['targets']);
  } catch (e) {
    return { ok: false, reason: `dmsetup cannot talk to device-mapper: ${(e as Error).message}` };
  }
  if (!/^thin-pool\s/m.test(targets)) {
    // The target loads on first use when it is a module; try now so the answer is definite.
    await run('modprobe', ['dm-thin-pool']).catch(() => undefined);
    targets = await dmsetup(['targets']).catch(() => '');
    if (!/^thin-pool\s/m.test(targets)) return { ok: false, reason: 'the kernel has no dm-thin-pool target (CONFIG_DM_THIN_PROVISIONING)' };
  }
  const mkfsTool = s.fs === 'ext4' ? 'mkfs.ext4' : 'mkfs.xfs';
  try {
    await run(mkfsTool, ['-V']);
  } catch {
    return { ok: false, reason: `${mkfsTool} is not installed (${s.fs === 'ext4' ? 'e2fsprogs' : 'xfsprogs'})` };
  }
  return { ok: true };
}

export function create(opts: DriverOptions): Driver {
  return new DevmapperDriver(settingsOf(opts));
}
