/** The native driver's entry point for the registry (drivers/index.ts). */
import * as fs from 'node:fs';
import type { Driver, DriverOptions, ProbeResult } from '../driver';
import { native } from '../../native';
import { NativeDriver } from './driver';

/** Works on any filesystem that can hold the root, given the addon (mknod, xattrs, nanosecond times). */
export async function probe(opts: DriverOptions): Promise<ProbeResult> {
  try {
    native();
  } catch (e) {
    return { ok: false, reason: e instanceof Error ? e.message : String(e) };
  }
  try {
    fs.mkdirSync(opts.root, { recursive: true, mode: 0o711 });
    fs.accessSync(opts.root, fs.constants.W_OK);
  } catch (e) {
    return { ok: false, reason: `cannot use ${opts.root} as the native driver's root: ${(e as Error).message}` };
  }
  return { ok: true };
}

export function create(opts: DriverOptions): Driver {
  return new NativeDriver(opts);
}
