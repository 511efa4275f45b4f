/**
 * btrfs driver entry: probe and create. Settings from `[driver.btrfs]`:
 *   ops = "ioctl" | "cli"   how subvolumes are made (default: the native ioctls when the addon has them)
 *   enable_quota = bool     turn btrfs quotas on at startup when they are off (default false: a quota rescan of a
 *                           big existing filesystem is the operator's call)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import type { Driver, DriverOptions, ProbeResult } from '../driver';
import { FS_MAGIC } from '../../native';
import { invalidArgument } from '../../src/core/errors';
import { fsTypeName } from '../native/dirstore';
import { BtrfsDriver } from './driver';
import { ioctlsAvailable, subvolOps, type SubvolOpsKind } from './subvol';

/** The nearest existing ancestor of p: the root may not exist before the first start. */
function existingAncestor(p: string): string {
  let cur = path.resolve(p);
  while (!fs.existsSync(cur)) {
    const up = path.dirname(cur);
    if (up === cur) break;
    cur = up;
  }
  return cur;
}

function hasBtrfsProgram(): Promise<boolean> {
  return new Promise((resolve) => execFile('btrfs', ['--version'], (err) => resolve(!err)));
}

function opsKind(opts: DriverOptions, ioctls: boolean): SubvolOpsKind {
  const v = opts.config['ops'];
  if (v === undefined) return ioctls ? 'ioctl' : 'cli';
  if (v !== 'ioctl' && v !== 'cli') throw invalidArgument(`[driver.btrfs] ops must be "ioctl" or "cli", not ${JSON.stringify(v)}`);
  return v;
}

export async function probe(opts: DriverOptions): Promise<ProbeResult> {
  const at = existingAncestor(opts.root);
  let type: number;
  try {
    type = fs.statfsSync(at).type;
  } catch (e) {
    return { ok: false, reason: `cannot stat the filesystem of ${at}: ${(e as Error).message}` };
  }
  if (type !== FS_MAGIC.BTRFS) {
    return {
      ok: false,
      reason: `strata's root ${opts.root} is on ${fsTypeName(type)}, not btrfs: put the root on a btrfs filesystem (or a loop-mounted btrfs image) or choose another driver`,
    };
  }
  const ioctls = ioctlsAvailable();
  const program = await hasBtrfsProgram();
  let kind: SubvolOpsKind;
  try {
    kind = opsKind(opts, ioctls);
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
  if (kind === 'ioctl' && !ioctls) return { ok: false, reason: "ops = \"ioctl\" but strata's native addon has no btrfs ioctls (rebuild it)" };
  if (kind === 'cli' && !program) return { ok: false, reason: 'the btrfs program (btrfs-progs) is not installed and the native addon has no btrfs ioctls' };
  // Without the program everything but quota limits works; say so instead of failing later.
  return program ? { ok: true } : { ok: true, reason: 'btrfs-progs not installed: size limits and qgroup usage are unavailable' };
}

export function create(opts: DriverOptions): Driver {
  const enable = opts.config['enable_quota'];
  return new BtrfsDriver({
    root: opts.root,
    ops: subvolOps(opsKind(opts, ioctlsAvailable())),
    enableQuota: enable === true || enable === 'true',
  });
}
