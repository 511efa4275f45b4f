/**
 * Apply workers kept between applies. A fresh worker costs an isolate boot (~80 ms of CPU) and then runs the tar
 * reader and the applier cold: interpreted, then re-optimised by V8 for every layer. The daemon unpacks layer
 * after layer, so it hands each apply a worker the previous one left warm. A worker is reused only after it
 * answered cleanly (every apply, failed or not, ends with a result and closes its fds and file writer); one that
 * crashed, exited or is being torn down is never handed out again.
 *
 * Idle workers are unref'd, so they never keep a process alive (snapctl apply exits as before), and they are
 * terminated after IDLE_MS without work, so a daemon that stopped unpacking gives their memory back.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { UnpackError } from './errors';
import type { WorkerInput, WorkerResult } from './protocol';
import { createRing, reuseRing, type RingBuffers } from './ring';

/** The ring an apply gets unless it asks for another size. */
export const DEFAULT_RING_BYTES = 4 << 20;

/** Concurrent applies beyond this many still get workers; only this many wait idle afterwards. */
const MAX_IDLE = 2;
const IDLE_MS = 60_000;

interface Idle {
  worker: Worker;
  /** The ring's data buffer the worker last read: the next apply reuses it (its control words are fresh). */
  ringData: SharedArrayBuffer;
  timer: NodeJS.Timeout;
  /**
   * Drops the worker from the pool if it fails or dies while idle (it should not); listens for 'error' too, as
   * an 'error' nobody listens for would throw in the daemon. Removed when the worker is handed out.
   */
  onGone: () => void;
}

const idle: Idle[] = [];

function spawn(): Worker {
  // The applier closes fds the addon opened; tracking them would cost a warning object per close.
  // A small young generation: the worker allocates little per entry, and RSS is part of the contract.
  return new Worker(path.join(__dirname, 'worker.js'), {
    trackUnmanagedFds: false,
    resourceLimits: { maxYoungGenerationSizeMb: 8 },
  });
}

/** One apply's use of a worker: end() it exactly once. */
export interface ApplyJob {
  /** The ring the worker reads this apply from. */
  readonly ring: RingBuffers;
  /** Resolves with the worker's answer; rejects if the worker died without one. */
  readonly result: Promise<WorkerResult>;
  /** Returns the worker to the pool (if it answered) or terminates it. */
  end(): Promise<void>;
}

/**
 * Takes an idle worker or boots one, and gives it the apply (`input` built around a ring of ringBytes). The
 * input is sent before the ring carries any data: the worker blocks on the ring, so booting overlaps opening and
 * reading the layer.
 */
export function startApply(ringBytes: number, input: (ring: RingBuffers) => WorkerInput): ApplyJob {
  // Same size only: a reused ring must bound memory exactly as a fresh one would.
  const i = idle.findIndex((e) => e.ringData.byteLength === ringBytes);
  const reused = i >= 0 ? idle.splice(i, 1)[0] : undefined;
  let worker: Worker;
  let ring: RingBuffers;
  if (reused) {
    clearTimeout(reused.timer);
    unwatch(reused);
    worker = reused.worker;
    worker.ref();
    ring = reuseRing(reused.ringData);
  } else {
    worker = spawn();
    ring = createRing(ringBytes);
  }
  let answered = false;
  let onMessage: (m: WorkerResult) => void = () => undefined;
  let onError: (e: Error) => void = () => undefined;
  let onExit: (code: number) => void = () => undefined;
  const result = new Promise<WorkerResult>((resolve, reject) => {
    onMessage = (m) => {
      answered = true;
      resolve(m);
    };
    onError = reject;
    onExit = (code) => reject(new UnpackError('io', `the apply worker exited (code ${code}) without a result`));
    worker.once('message', onMessage);
    worker.once('error', onError);
    worker.once('exit', onExit);
  });
  // Until awaited, a rejection here must not count as unhandled.
  result.catch(() => undefined);
  worker.postMessage(input(ring));

  let ended = false;
  return {
    ring,
    result,
    async end(): Promise<void> {
      if (ended) return;
      ended = true;
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
      if (!answered || idle.length >= MAX_IDLE) {
        await worker.terminate();
        return;
      }
      park(worker, ring.data);
    },
  };
}

function unwatch(e: Idle): void {
  e.worker.off('error', e.onGone);
  e.worker.off('exit', e.onGone);
}

function park(worker: Worker, ringData: SharedArrayBuffer): void {
  const leave = (): void => {
    const i = idle.indexOf(entry);
    if (i >= 0) idle.splice(i, 1);
    clearTimeout(entry.timer);
  };
  const entry: Idle = {
    worker,
    ringData,
    timer: setTimeout(() => {
      leave();
      void worker.terminate();
    }, IDLE_MS),
    onGone: leave,
  };
  entry.timer.unref();
  worker.on('error', leave);
  worker.on('exit', leave);
  worker.unref();
  idle.push(entry);
}

/**
 * Boots a worker now, idle, for an apply about to start (with the default ring), so the boot overlaps whatever
 * the caller loads and opens first. Does nothing if one waits already.
 */
export function prewarm(): void {
  if (idle.some((e) => e.ringData.byteLength === DEFAULT_RING_BYTES)) return;
  park(spawn(), createRing(DEFAULT_RING_BYTES).data);
}

/** Terminates the idle workers (daemon shutdown, tests). */
export async function closeIdleWorkers(): Promise<void> {
  const all = idle.splice(0);
  for (const e of all) {
    clearTimeout(e.timer);
    unwatch(e);
  }
  await Promise.all(all.map((e) => e.worker.terminate()));
}

/** How many workers wait idle (status, tests). */
export function idleWorkers(): number {
  return idle.length;
}
