/** containerd.services.snapshots.v1.Snapshots over the Snapshotter core. */
import type * as grpc from '@grpc/grpc-js';
import {
  SnapshotsService,
  type ListSnapshotsResponse,
  type SnapshotsServer,
  type StatSnapshotResponse,
  type UpdateSnapshotResponse,
} from '../gen/containerd/services/snapshots/v1/snapshots';
import type { Mount as PbMount } from '../gen/containerd/types/mount';
import type { Mount } from '../core/types';
import type { DaemonContext } from '../daemon/context';
import type { ServiceRegistry } from './services';
import { encodeInfoField, infoToPb } from './info-codec';
import { toGrpcError, unary, callErrorLogger } from './status';


/** Infos per List message: well below the 16 MiB message limit even with 4 KiB labels. */
const LIST_BATCH = 100;

/** The generated service definition with the Info-bearing responses encoded from cached bytes (info-codec.ts). */
const SnapshotsServiceCached: typeof SnapshotsService = {
  ...SnapshotsService,
  stat: { ...SnapshotsService.stat, responseSerialize: (v: StatSnapshotResponse) => encodeInfoField(v.info ? [v.info] : []) },
  update: { ...SnapshotsService.update, responseSerialize: (v: UpdateSnapshotResponse) => encodeInfoField(v.info ? [v.info] : []) },
  list: { ...SnapshotsService.list, responseSerialize: (v: ListSnapshotsResponse) => encodeInfoField(v.info) },
};

function mountsToPb(mounts: Mount[]): PbMount[] {
  return mounts.map((m) => ({ type: m.type, source: m.source, target: '', options: m.options }));
}

export function register(server: ServiceRegistry, ctx: DaemonContext): void {
  const s = ctx.snapshotter;
  const log = ctx.log.child({ service: 'snapshots' });
  const onError = callErrorLogger(log);

  const impl: SnapshotsServer = {
    prepare: unary('Prepare', async (r) => ({ mounts: mountsToPb(await s.prepare(r.key, r.parent, r.labels)) }), onError),
    view: unary('View', async (r) => ({ mounts: mountsToPb(await s.view(r.key, r.parent, r.labels)) }), onError),
    mounts: unary('Mounts', async (r) => ({ mounts: mountsToPb(await s.mounts(r.key)) }), onError),
    commit: unary(
      'Commit',
      async (r) => {
        await s.commit(r.name, r.key, r.labels, r.parent);
        return {};
      },
      onError,
    ),
    remove: unary(
      'Remove',
      async (r) => {
        await s.remove(r.key);
        return {};
      },
      onError,
    ),
    stat: unary('Stat', (r) => ({ info: infoToPb(s.stat(r.key)) }), onError),
    update: unary(
      'Update',
      (r) => {
        const info = r.info ?? { name: '', labels: {} };
        return { info: infoToPb(s.update({ name: info.name, labels: info.labels ?? {} }, r.updateMask ?? [])) };
      },
      onError,
    ),
    list: (call) => {
      try {
        for (const batch of s.list(call.request.filters, LIST_BATCH)) {
          if (call.cancelled) return;
          call.write({ info: batch.map(infoToPb) });
        }
        call.end();
      } catch (e) {
        onError('List', e);
        // grpc-js sends a status for a server stream only through an 'error' event; destroy() would end the
        // stream with none and leave the client waiting for its deadline.
        call.emit('error', toGrpcError(e, 'List'));
      }
    },
    usage: unary(
      'Usage',
      async (r) => {
        const u = await s.usage(r.key);
        return { size: u.size, inodes: u.inodes };
      },
      onError,
    ),
    cleanup: unary(
      'Cleanup',
      async () => {
        const report = await s.cleanup();
        if (report.reclaimed.length > 0) log.info('cleanup reclaimed storage', { ids: report.reclaimed });
        return {};
      },
      onError,
    ),
  };
  server.addService(SnapshotsServiceCached, impl);
}
