/**
 * ZFS driver entry: probe and create. Settings from `[driver.zfs]`:
 *   dataset = "pool/strata"          required: the parent dataset (created at startup if its pool exists)
 *   mount = "legacy" | "property"    who mounts datasets (default: legacy with the kernel module, property with
 *                                    zfs-fuse, whose datasets mount(2) cannot mount; see driver.ts)
 */
import * as fs from 'node:fs';
import type { Driver, DriverOptions, ProbeResult } from '../driver';
import { invalidArgument, isStrataError } from '../../src/core/errors';
import { runZfs } from './exec';
import { ZfsDriver, type MountMode } from './driver';

/** A dataset name zfs accepts, with at least a pool and no snapshot part. */
const DATASET_RE = /^[A-Za-z][A-Za-z0-9_.:-]*(\/[A-Za-z0-9_.:-]+)*$/;

function datasetOf(opts: DriverOptions): string {
  const v = opts.config['dataset'];
  if (typeof v !== 'string' || v === '') throw invalidArgument('the zfs driver needs a parent dataset: set dataset = "pool/strata" in [driver.zfs]');
  if (!DATASET_RE.test(v)) throw invalidArgument(`[driver.zfs] dataset ${JSON.stringify(v)} is not a valid dataset name`);
  return v;
}

/** The kernel module registers a "zfs" filesystem type; zfs-fuse does not. */
function kernelZfs(): boolean {
  try {
    return /\tzfs$/m.test(fs.readFileSync('/proc/filesystems', 'utf8'));
  } catch {
    return false;
  }
}

function mountModeOf(opts: DriverOptions): MountMode {
  const v = opts.config['mount'];
  if (v === undefined) return kernelZfs() ? 'legacy' : 'property';
  if (v !== 'legacy' && v !== 'property') throw invalidArgument(`[driver.zfs] mount must be "legacy" or "property", not ${JSON.stringify(v)}`);
  if (v === 'legacy' && !kernelZfs()) throw invalidArgument('[driver.zfs] mount = "legacy" needs the zfs kernel module (zfs-fuse datasets cannot be mounted with mount(2))');
  return v;
}

export async function probe(opts: DriverOptions): Promise<ProbeResult> {
  let dataset: string;
  try {
    dataset = datasetOf(opts);
    mountModeOf(opts);
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
  try {
    await runZfs(['list', '-H', '-o', 'name', dataset]);
    return { ok: true };
  } catch (e) {
    if (!isStrataError(e, 'NotFound')) return { ok: false, reason: (e as Error).message };
  }
  // The dataset itself is created at startup; its pool must exist.
  const pool = dataset.split('/')[0]!;
  try {
    await runZfs(['list', '-H', '-o', 'name', pool]);
    return { ok: true };
  } catch (e) {
    return { ok: false, reason: `neither dataset ${dataset} nor its pool ${pool} exists: create the pool first (${(e as Error).message})` };
  }
}

export function create(opts: DriverOptions): Driver {
  return new ZfsDriver({ root: opts.root, dataset: datasetOf(opts), mountMode: mountModeOf(opts) });
}
