/** strata.v1.Volumes over the volume engine (src/volumes), the one the Docker plugin uses too. */
import type * as grpc from '@grpc/grpc-js';
import type { DaemonContext } from '../daemon/context';
import type { ServiceRegistry } from './services';
import { VolumesService, type Volume as PbVolume, type VolumesServer } from '../gen/strata/v1/volumes';
import { volumeEngineFor } from '../volumes/daemon';
import type { Volume } from '../volumes/types';
import { unary, callErrorLogger } from './status';

export function volumeToPb(v: Volume): PbVolume {
  return {
    id: v.id,
    name: v.name,
    backend: v.backend,
    path: v.path,
    readonly: v.readonly,
    sizeLimit: v.sizeLimit,
    labels: v.labels,
    options: v.options,
    originKind: v.origin?.kind ?? '',
    originName: v.origin?.name ?? '',
    createdAt: v.created,
    state: v.state,
    refs: v.refs,
  };
}

export function register(server: ServiceRegistry, ctx: DaemonContext): void {
  // Opened once per daemon and shared with the Docker plugin; calls wait for it (recovery runs at startup).
  const engine = volumeEngineFor(ctx);
  engine.catch((e: unknown) => ctx.log.error('volume engine failed to start', { err: e as Error }));
  const log = ctx.log.child({ service: 'volumes' });
  const onError = callErrorLogger(log);

  const impl: VolumesServer = {
    create: unary(
      'Create',
      async (r) => {
        const v = await (await engine).create({
          name: r.name,
          sizeLimit: r.sizeLimit,
          labels: r.labels,
          snapshotOf: r.snapshotOf || undefined,
          cloneOf: r.cloneOf || undefined,
          options: {
            ...(r.sizeLimit ? { size: String(r.sizeLimit) } : {}),
            ...(r.snapshotOf ? { 'snapshot-of': r.snapshotOf } : {}),
            ...(r.cloneOf ? { 'clone-of': r.cloneOf } : {}),
          },
        });
        return { volume: volumeToPb(v) };
      },
      onError,
    ),
    inspect: unary('Inspect', async (r) => ({ volume: volumeToPb((await engine).inspect(r.name)) }), onError),
    list: unary('List', async (r) => ({ volumes: (await engine).list(r.labels ?? {}).map(volumeToPb) }), onError),
    snapshot: unary('Snapshot', async (r) => ({ volume: volumeToPb(await (await engine).snapshot(r.source, r.name, r.labels)) }), onError),
    clone: unary(
      'Clone',
      async (r) => ({ volume: volumeToPb(await (await engine).clone(r.source, r.name, r.sizeLimit || undefined, r.labels)) }),
      onError,
    ),
    remove: unary(
      'Remove',
      async (r) => {
        await (await engine).remove(r.name, { force: r.force });
        return {};
      },
      onError,
    ),
    usage: unary('Usage', async (r) => (await engine).usage(r.name), onError),
    mount: unary('Mount', async (r) => ({ path: (await engine).mount(r.name, r.callerId) }), onError),
    unmount: unary(
      'Unmount',
      async (r) => {
        const e = await engine;
        e.unmount(r.name, r.callerId);
        return { path: '' };
      },
      onError,
    ),
  };
  server.addService(VolumesService, impl);
}
