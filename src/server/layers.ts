/**
 * strata.v1.Layers (proto/strata/v1/layers.proto): layer blobs into committed snapshots (Unpack) and snapshots
 * back into layers (Diff). Unpack goes through the Snapshotter core like any client would (prepare → apply into
 * the driver's apply target → commit), so containerd later sees an ordinary committed snapshot; a failed apply
 * removes the active snapshot, it is never committed.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import type * as grpc from '@grpc/grpc-js';
import { alreadyExists, invalidArgument, isStrataError } from '../core/errors';
import type { DaemonContext } from '../daemon/context';
import type { ServiceRegistry } from './services';
import { LayersService, type DiffResponse, type LayersServer, type UnpackResponse } from '../gen/strata/v1/layers';
import { writeDiff, type DiffCompression, type DiffSource } from '../unpack/diff';
import { applyLayer } from '../unpack/engine';
import { toStrata, UnpackError } from '../unpack/errors';
import { unary, callErrorLogger } from './status';

/** The key of the transient active snapshot: unique, and naming the layer for `snapctl ls` while it runs. */
function unpackKey(name: string): string {
  return `unpack-${randomBytes(6).toString('hex')} ${name}`;
}

function exists(ctx: DaemonContext, key: string): boolean {
  try {
    ctx.snapshotter.stat(key);
    return true;
  } catch (e) {
    if (isStrataError(e, 'NotFound')) return false;
    throw e;
  }
}

export function register(server: ServiceRegistry, ctx: DaemonContext): void {
  const log = ctx.log.child({ service: 'layers' });
  const onError = callErrorLogger(log, 'info');
  const s = ctx.snapshotter;

  const impl: LayersServer = {
    unpack: unary(
      'Unpack',
      async (r): Promise<UnpackResponse> => {
        if (!r.name) throw invalidArgument('name is required');
        if (!r.layerPath) throw invalidArgument('layer_path is required');
        if (exists(ctx, r.name)) throw alreadyExists(`snapshot "${r.name}" already exists`);
        // Opened here so a missing blob is the caller's error, before any snapshot exists.
        try {
          fs.accessSync(r.layerPath, fs.constants.R_OK);
        } catch {
          throw invalidArgument(`cannot read the layer at "${r.layerPath}" (a path on the daemon's host)`);
        }
        const t0 = performance.now();
        const key = unpackKey(r.name);
        await s.prepareForApply(key, r.parent);
        let committed = false;
        try {
          const target = await s.openApplyTarget(key);
          let res;
          try {
            res = await applyLayer({
              // Offset 0 and no length is the whole file: one form covers a blob and a docker-save member.
              layer: { path: r.layerPath, offset: r.layerOffset, length: r.layerLength > 0 ? r.layerLength : undefined },
              root: target.dir,
              whiteouts: target.whiteouts,
              lowerDirs: target.lowerDirs,
              userxattr: target.overlayXattrPrefix === 'user.overlay.',
              diffId: r.diffId || undefined,
              sync: 'syncfs',
            });
          } catch (e) {
            throw toStrata(e);
          } finally {
            await target.release();
          }
          await s.commit(r.name, key, r.labels ?? {});
          committed = true;
          const durationUs = Math.round((performance.now() - t0) * 1000);
          log.info('layer unpacked', { name: r.name, parent: r.parent, bytes: res.uncompressedBytes, entries: res.entries, ms: Math.round(durationUs / 1000) });
          return {
            name: r.name,
            diffId: res.diffId,
            compression: res.compression,
            compressedBytes: res.compressedBytes,
            bytes: res.uncompressedBytes,
            entries: res.entries,
            durationUs,
            syncUs: Math.round(res.stats.syncMs * 1000),
            committedAt: new Date(),
          };
        } finally {
          if (!committed) {
            await s.remove(key).catch((e: unknown) => log.warn('removing a failed unpack', { key, err: e as Error }));
          }
        }
      },
      onError,
    ),
    diff: unary(
      'Diff',
      async (r): Promise<DiffResponse> => {
        if (!r.key) throw invalidArgument('key is required');
        if (!r.outputPath) throw invalidArgument('output_path is required');
        const compression = (r.compression || 'none') as DiffCompression;
        if (!['gzip', 'zstd', 'none'].includes(compression)) throw invalidArgument(`compression "${r.compression}" is not gzip, zstd or none`);
        const info = s.stat(r.key);
        const releases: Array<() => Promise<void>> = [];
        try {
          const trees = async (): Promise<DiffSource> => {
            const n = await s.openTree(r.key);
            releases.push(n.release);
            let oldDir: string | null = null;
            if (info.parent) {
              const o = await s.openTree(info.parent);
              releases.push(o.release);
              oldDir = o.dir;
            }
            return { kind: 'trees', newDir: n.dir, oldDir };
          };
          // Where the driver keeps the layer as a change set, that is the diff already: one walk, no comparison.
          const changes = await s.openChanges(r.key);
          if (changes) releases.push(changes.release);
          const write = (src: DiffSource) => writeDiff(src, r.outputPath, compression);
          let res;
          try {
            res = changes ? await write({ kind: 'upper', dir: changes.dir, overlayPrefix: changes.overlayPrefix }) : await write(await trees());
          } catch (e) {
            // An upper the kernel wrote with redirect_dir or metacopy (renamed directories, metadata-only copy-ups)
            // cannot be read as a change set; the two whole trees still compare. The output file is rewritten.
            if (!(changes && e instanceof UnpackError && e.kind === 'unsupported')) throw toStrata(e, 'diff');
            log.info('diff: the change set has overlay redirects or metacopy; comparing whole trees', { key: r.key });
            res = await write(await trees()).catch((e2: unknown) => {
              throw toStrata(e2, 'diff');
            });
          }
          return { diffId: res.diffId, digest: res.digest, size: res.size, entries: res.entries, durationUs: Math.round(res.durationMs * 1000) };
        } finally {
          for (const rel of releases.reverse()) await rel().catch(() => undefined);
        }
      },
      onError,
    ),
  };
  server.addService(LayersService, impl);
}
