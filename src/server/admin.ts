/**
 * strata.v1.Admin: read-only detail for snapctl (proto/strata/v1/admin.proto). Everything comes from the
 * Snapshotter core, the metadata store and the driver through their public methods, so what `snapctl info`
 * shows is what the Snapshots service acts on.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import type { SnapshotRef } from '../../drivers/driver';
import type { DaemonContext } from '../daemon/context';
import type { ServiceRegistry } from './services';
import { AdminService, type AdminServer, type InfoResponse, type StatusResponse } from '../gen/strata/v1/admin';
import { unary, callErrorLogger } from './status';

/** A driver may say where a snapshot's own layer lives; optional so drivers without host paths need nothing. */
interface PathDriver {
  path?(ref: SnapshotRef): string;
}

function readVersion(): string {
  // dist/src/server/admin.js → package.json three levels up; src/ layout keeps the same depth under ts-node.
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, rel), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'strata' && pkg.version) return pkg.version;
    } catch {
      /* try the next layout */
    }
  }
  return '';
}

/**
 * The directory holding a snapshot's own layer. Directory drivers (overlay, native) keep it at
 * <root>/snapshots/<id>/fs; a driver with another layout answers through an optional path(ref).
 */
function layerPath(ctx: DaemonContext, ref: SnapshotRef): string {
  const custom = (ctx.driver as PathDriver).path;
  if (typeof custom === 'function') return custom.call(ctx.driver, ref);
  const p = path.join(ctx.config.root, 'snapshots', String(ref.id), 'fs');
  return fs.existsSync(p) ? p : '';
}

export function register(server: ServiceRegistry, ctx: DaemonContext): void {
  const log = ctx.log.child({ service: 'admin' });
  const startedAt = new Date();
  const version = readVersion();
  const onError = callErrorLogger(log);
  const s = ctx.snapshotter;

  const impl: AdminServer = {
    info: unary(
      'Info',
      async (r): Promise<InfoResponse> => {
        const info = s.stat(r.key);
        const ref = s.ref(r.key);
        const row = ctx.store.get(r.key);
        const res: InfoResponse = {
          name: info.name,
          id: ref.id,
          kind: info.kind,
          parents: ref.parents.map((id) => ({ id, name: ctx.store.getById(id)?.key ?? '' })),
          path: layerPath(ctx, ref),
          pathHoldsChanges: false,
          usage: undefined,
          usageError: '',
          sizeLimit: row?.sizeLimit ?? 0,
          mounts: [],
          labels: info.labels,
          createdAt: info.created,
          updatedAt: info.updated,
        };
        const changes = await s.openChanges(r.key);
        if (changes) {
          res.pathHoldsChanges = true;
          await changes.release();
        }
        if (info.kind !== 'committed') {
          res.mounts = (await s.mounts(r.key)).map((m) => ({ type: m.type, source: m.source, target: '', options: m.options }));
        }
        if (!r.skipUsage) {
          // Usage is best effort here: info about a snapshot whose tree cannot be walked is still useful.
          try {
            const u = await s.usage(r.key);
            res.usage = { size: u.size, inodes: u.inodes, method: u.method };
          } catch (e) {
            res.usageError = e instanceof Error ? e.message : String(e);
          }
        }
        return res;
      },
      onError,
    ),
    status: unary(
      'Status',
      async (): Promise<StatusResponse> => {
        const counts = ctx.store.counts();
        return {
          driver: ctx.driver.name,
          driverStatus: await ctx.driver.status(),
          root: ctx.config.root,
          address: ctx.config.address,
          active: counts.active,
          views: counts.view,
          committed: counts.committed,
          pendingReclaims: ctx.store.pendingReclaims().length,
          version,
          pid: process.pid,
          startedAt,
        };
      },
      onError,
    ),
  };
  server.addService(AdminService, impl);
}
