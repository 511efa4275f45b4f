/**
 * applyLayer(): a layer blob (file or stream) → files under a directory. The main thread reads and
 * decompresses (async reads, so the daemon's event loop keeps serving) into a shared ring (gzip and zstd in
 * place, plain tar by copy), and a worker thread parses and applies them synchronously. The uncompressed
 * stream goes to a hashing thread as it enters the ring, and its digest is compared with the expected diffID.
 * Any failure rejects; the caller discards the snapshot.
 */
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { native } from '../../native';
import type { ApplierOptions, ApplyStats, SyncMode, WhiteoutForm } from './apply';
import { detectCompression, type Compression } from './compression';
import { decompressIntoRing } from './decompress';
import { UnpackError } from './errors';
import { FileChunks, type FileRange } from './file-chunks';
import { DEFAULT_PATH_LIMITS, type PathLimits } from './paths';
import type { WorkerInput, WorkerResult } from './protocol';
import { RingWriter } from './ring';
import { DEFAULT_TAR_LIMITS, type TarLimits } from './tar';
import { DEFAULT_RING_BYTES, startApply } from './worker-pool';

export interface ApplyLayerOptions {
  /** A path to the blob, a byte range of a file holding it, or a stream of it. */
  layer: string | LayerFileRange | Readable;
  /** The directory to apply into. */
  root: string;
  whiteouts: WhiteoutForm;
  userxattr?: boolean;
  lowerDirs?: string[];
  /** Expected diffID, `sha256:<hex>`: a mismatch fails the apply. */
  diffId?: string;
  sync?: SyncMode;
  owners?: boolean;
  devices?: 'create' | 'refuse';
  limits?: Partial<UnpackLimits>;
  /** Progress, called at most every ~100 ms with compressed bytes read so far. */
  onProgress?: (compressedBytes: number, uncompressedBytes: number) => void;
  /** Ring size in bytes (default DEFAULT_RING_BYTES, 4 MiB). */
  ringBytes?: number;
}

export interface LayerFileRange extends FileRange {
  path: string;
}

export interface UnpackLimits extends TarLimits, PathLimits {
  /**
   * Highest uncompressed/compressed ratio accepted once ratioAfter bytes came out. gzip tops out near 1032:1;
   * zstd goes far beyond, which is what a bomb looks like.
   */
  maxRatio: number;
  ratioAfter: number;
  /** Most uncompressed bytes (0: no limit; a quota is the usual bound). */
  maxUncompressed: number;
}

export const DEFAULT_LIMITS: UnpackLimits = {
  ...DEFAULT_TAR_LIMITS,
  ...DEFAULT_PATH_LIMITS,
  maxRatio: 1100,
  ratioAfter: 256 << 20,
  maxUncompressed: 0,
};

export interface ApplyResult {
  /** `sha256:<hex>` of the uncompressed stream. */
  diffId: string;
  compression: Compression;
  compressedBytes: number;
  uncompressedBytes: number;
  entries: number;
  stats: ApplyStats;
  durationMs: number;
}

const PROGRESS_MS = 100;

function layerChunks(layer: ApplyLayerOptions['layer']): AsyncIterator<Buffer> {
  if (typeof layer === 'string') return new FileChunks(layer);
  if (layer instanceof Readable) return layer[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  return new FileChunks(layer.path, layer);
}

/**
 * For processes that unpack (the daemon, `snapctl apply`): allocations above 1 MiB go back to the kernel when
 * freed instead of staying in the heap, and a heap keeps up to 8 MiB free rather than refaulting it
 * (native/src/memory.c has the figures). Call once at startup.
 */
export function setUnpackMallocPolicy(): void {
  native().fixMallocThresholds((1 << 20) + 1, 8 << 20);
}

export async function applyLayer(opts: ApplyLayerOptions): Promise<ApplyResult> {
  const t0 = performance.now();
  const limits: UnpackLimits = { ...DEFAULT_LIMITS, ...opts.limits };
  if (opts.diffId !== undefined && !/^sha256:[0-9a-f]{64}$/.test(opts.diffId)) {
    throw new UnpackError('corrupt', `diffID "${opts.diffId}" is not sha256:<64 hex digits>`);
  }
  const applierOpts: ApplierOptions = {
    whiteouts: opts.whiteouts,
    userxattr: opts.userxattr,
    lowerDirs: opts.lowerDirs,
    owners: opts.owners,
    devices: opts.devices,
    sync: opts.sync ?? 'syncfs',
    pathLimits: { maxPathBytes: limits.maxPathBytes, maxDepth: limits.maxDepth },
  };
  const job = startApply(opts.ringBytes ?? DEFAULT_RING_BYTES, (ring): WorkerInput => ({
    ring,
    root: path.resolve(opts.root),
    applier: applierOpts,
    tarLimits: { maxMetaSize: limits.maxMetaSize, maxEntries: limits.maxEntries, maxTrailing: limits.maxTrailing },
  }));
  const result = job.result;
  const writer = new RingWriter(job.ring);

  // The worker has the job before the layer is opened: a fresh one boots (~80 ms) while the layer is opened and
  // read and the decompressor loads; a pooled one is already waiting on the ring.
  const iter = layerChunks(opts.layer);
  // The first chunk decides the compression; it is then fed to the decompressor like any other.
  let first: Buffer;
  let compression: Compression;
  try {
    try {
      const r = await iter.next();
      first = r.done ? Buffer.alloc(0) : r.value;
    } catch (e) {
      throw new UnpackError('io', `reading the layer: ${(e as Error).message}`, (e as { code?: string }).code);
    }
    compression = detectCompression(first);
  } catch (e) {
    // Refused before the pipeline owns the stream: close the layer file here, or its fd stays open (on zfs-fuse
    // an open fd keeps the whole pool busy). The worker sees the failed ring and stops.
    writer.fail();
    await iter.return?.().catch(() => undefined);
    await result.catch(() => undefined);
    await job.end();
    throw e;
  }

  // Hashed on a thread of its own, beside the decompressor rather than after it (native/src/sha256.c: why).
  const bin = native();
  const hasher = bin.sha256Create();
  let compressed = 0;
  let uncompressed = 0;
  let producerError: unknown = null;
  try {
    // Every uncompressed byte passes here before the worker sees it: counted, hashed, checked against the limits.
    const accept = (view: Uint8Array): void => {
      uncompressed += view.length;
      bin.sha256Update(hasher, view);
      if (limits.maxUncompressed > 0 && uncompressed > limits.maxUncompressed) {
        throw new UnpackError('limit', `the layer uncompresses to more than ${limits.maxUncompressed} bytes`);
      }
      if (uncompressed > limits.ratioAfter && compression !== 'none' && uncompressed > compressed * limits.maxRatio) {
        throw new UnpackError('limit', `decompression ratio above ${limits.maxRatio}:1 after ${uncompressed} bytes: refusing a likely decompression bomb`);
      }
    };
    const produce = (chunk: Buffer): Promise<boolean> => {
      accept(chunk);
      return writer.write(chunk);
    };
    let lastProgress = 0;
    const progress = (): void => {
      if (!opts.onProgress) return;
      const now = performance.now();
      if (now - lastProgress < PROGRESS_MS) return;
      lastProgress = now;
      opts.onProgress(compressed, uncompressed);
    };

    if (compression === 'none') {
      let chunk: Buffer | null = first;
      while (chunk) {
        compressed += chunk.length;
        if (chunk.length && !(await produce(chunk))) break;
        progress();
        const r = await iter.next();
        chunk = r.done ? null : r.value;
      }
    } else {
      await decompressIntoRing(compression, first, iter, writer, {
        input: (n) => void (compressed += n),
        output: (view) => {
          accept(view);
          progress();
        },
      });
    }
  } catch (e) {
    producerError = e;
    writer.fail();
  } finally {
    // A file is ours to close; a caller's stream is the caller's.
    if (iter instanceof FileChunks) await iter.return();
  }
  if (!producerError) writer.end();

  let res: WorkerResult;
  let digest: string | undefined;
  try {
    try {
      res = await result;
    } finally {
      await job.end();
    }
    if (producerError) {
      if (producerError instanceof UnpackError) throw producerError;
      throw new UnpackError('io', `reading the layer: ${(producerError as Error).message}`, (producerError as { code?: string }).code);
    }
    if (!res.ok) throw new UnpackError(res.kind, res.message, res.errno);
    digest = `sha256:${bin.sha256Digest(hasher)}`;
  } finally {
    // A failed apply's hasher stops now, not when the garbage collector reaches it.
    if (digest === undefined) bin.sha256Close(hasher);
  }
  if (opts.diffId !== undefined && digest !== opts.diffId) {
    throw new UnpackError('digest', `the layer's diffID is ${digest}, expected ${opts.diffId}`);
  }
  opts.onProgress?.(compressed, uncompressed);
  return {
    diffId: digest,
    compression,
    compressedBytes: compressed,
    uncompressedBytes: res.uncompressedBytes,
    entries: res.tarEntries,
    stats: res.stats,
    durationMs: performance.now() - t0,
  };
}
