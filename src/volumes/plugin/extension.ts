/** The daemon extension that serves the Docker volume plugin (src/daemon/extensions.ts lists it). */
import type { Closable, DaemonContext } from '../../daemon/context';
import { volumeEngineFor } from '../daemon';
import { startPluginServer } from './server';

export async function dockerVolumePlugin(ctx: DaemonContext): Promise<Closable> {
  const socket = ctx.config.volumes.pluginSocket;
  if (!socket) {
    ctx.log.info('docker volume plugin disabled (volumes.plugin_socket is empty)');
    return { close: async () => undefined };
  }
  return startPluginServer(await volumeEngineFor(ctx), socket, ctx.log);
}
