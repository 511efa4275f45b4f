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
}

export type WorkerResult =
  | { ok: true; stats: ApplyStats; uncompressedBytes: number; tarEntries: number }
  | { ok: false; aborted: boolean; kind: UnpackErrorKind; message: string; errno?: string };
