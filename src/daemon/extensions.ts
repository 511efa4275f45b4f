/**
 * Listeners and tasks the daemon runs beside the gRPC socket (e.g. the Docker volume plugin). Each starts with
 * the daemon's context and is closed, in reverse order, on shutdown.
 */
import type { Closable, DaemonContext } from './context';

export type Extension = (ctx: DaemonContext) => Promise<Closable>;

export function extensions(): Extension[] {
  return [
    (require('../volumes/plugin/extension') as { dockerVolumePlugin: Extension }).dockerVolumePlugin,
  ];
}
