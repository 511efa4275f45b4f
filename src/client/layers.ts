/**
 * A promise client of strata.v1.Layers (proto/strata/v1/layers.proto): unpack layer blobs into committed
 * snapshots and write diffs, for snapctl, tests and benchmarks. Paths are host paths the daemon opens.
 */
import * as grpc from '@grpc/grpc-js';
import { LayersClient } from '../gen/strata/v1/layers';
import { grpcTarget } from './snapshots';

export interface UnpackParams {
  name: string;
  parent?: string;
  layerPath: string;
  diffId?: string;
  labels?: Record<string, string>;
  /** A byte range of layerPath (a member of an image archive). */
  offset?: number;
  length?: number;
}

export interface UnpackSummary {
  name: string;
  diffId: string;
  compression: string;
  compressedBytes: number;
  bytes: number;
  entries: number;
  durationMs: number;
  syncMs: number;
}

export interface DiffSummary {
  diffId: string;
  digest: string;
  size: number;
  entries: number;
  durationMs: number;
}

export class LayersApiClient {
  readonly raw: LayersClient;

  constructor(
    readonly address: string,
    /** Layers can be large: an hour by default. */
    private readonly timeoutMs = 3_600_000,
  ) {
    this.raw = new LayersClient(grpcTarget(address), grpc.credentials.createInsecure());
  }

  unpack(p: UnpackParams): Promise<UnpackSummary> {
    return new Promise((resolve, reject) => {
      this.raw.unpack(
        { name: p.name, parent: p.parent ?? '', layerPath: p.layerPath, diffId: p.diffId ?? '', labels: p.labels ?? {}, layerOffset: p.offset ?? 0, layerLength: p.length ?? 0 },
        new grpc.Metadata(),
        { deadline: Date.now() + this.timeoutMs },
        (err, r) => {
          if (err) return reject(err);
          resolve({
            name: r.name,
            diffId: r.diffId,
            compression: r.compression,
            compressedBytes: r.compressedBytes,
            bytes: r.bytes,
            entries: r.entries,
            durationMs: r.durationUs / 1000,
            syncMs: r.syncUs / 1000,
          });
        },
      );
    });
  }

  diff(key: string, outputPath: string, compression: 'gzip' | 'zstd' | 'none'): Promise<DiffSummary> {
    return new Promise((resolve, reject) => {
      this.raw.diff({ key, outputPath, compression }, new grpc.Metadata(), { deadline: Date.now() + this.timeoutMs }, (err, r) => {
        if (err) return reject(err);
        resolve({ diffId: r.diffId, digest: r.digest, size: r.size, entries: r.entries, durationMs: r.durationUs / 1000 });
      });
    });
  }

  close(): void {
    this.raw.close();
  }
}
