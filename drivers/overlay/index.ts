/** The overlay driver's entry point for the registry (drivers/index.ts). */
import type { Driver, DriverOptions, ProbeResult } from '../driver';
import { OverlayDriver } from './driver';
import { probeOverlay } from './features';

/** A real test mount in the root: overlay registered, the root's filesystem usable as an upper (d_type). */
export async function probe(opts: DriverOptions): Promise<ProbeResult> {
  const p = await probeOverlay(opts.root);
  return p.ok ? { ok: true } : { ok: false, reason: p.reason };
}

export function create(opts: DriverOptions): Driver {
  return new OverlayDriver(opts);
}
