/**
 * The one volume engine of a running daemon, shared by the gRPC service and the Docker plugin listener: both
 * register from the same DaemonContext, and whichever asks first opens it.
 */
import type { DaemonContext } from '../daemon/context';
import { backendForDriver } from './backends/select';
import { VolumeEngine } from './engine';

const engines = new WeakMap<DaemonContext, Promise<VolumeEngine>>();

export function volumeEngineFor(ctx: DaemonContext): Promise<VolumeEngine> {
  let p = engines.get(ctx);
  if (!p) {
    const driver = ctx.driver.name;
    p = VolumeEngine.open({
      root: ctx.config.root,
      store: ctx.store,
      backend: backendForDriver(driver, ctx.config.root, ctx.config.drivers[driver] ?? {}),
      log: ctx.log,
    });
    engines.set(ctx, p);
  }
  return p;
}
