/** What the main thread and the apply worker exchange (structured-cloned; the ring is shared memory). */
import type { ApplierOptions, ApplyStats } from './apply';
import type { UnpackErrorKind } from './errors';
import type { RingBuffers } from './ring';
import type { TarLimits } from './tar';

export interface WorkerInput {
  ring: RingBuffers;
  root: string;
  applier: ApplierOptions;
  tarLimits: TarLimits;
  /** Hash on the worker when the main thread is the busier side (gzip), else on the main thread. */
  hashInWorker: boolean;
}

export type WorkerResult =
  | { ok: true; stats: ApplyStats; uncompressedBytes: number; digest: string | null; tarEntries: number }
  | { ok: false; aborted: boolean; kind: UnpackErrorKind; message: string; errno?: string };
