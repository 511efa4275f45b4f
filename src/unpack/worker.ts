/**
 * The apply worker thread: reads the uncompressed stream from the shared ring, parses it and applies it with
 * synchronous syscalls (DESIGN.md, "The unpacker's shape"). Each message is one apply and gets one answer;
 * between applies the worker waits, warm, in the pool (worker-pool.ts). run() owns everything an apply opens and
 * closes it before answering, so nothing carries over to the next apply.
 */
import { parentPort } from 'node:worker_threads';
import { Applier } from './apply';
import { UnpackError } from './errors';
import { RingAborted, RingReader } from './ring';
import { TarReader } from './tar';
import type { WorkerInput, WorkerResult } from './protocol';

function run(input: WorkerInput): WorkerResult {
  const reader = new RingReader(input.ring);
  let applier: Applier | null = null;
  try {
    applier = new Applier(input.root, input.applier);
    const tar = new TarReader(applier, input.tarLimits);
    let bytes = 0;
    for (;;) {
      const chunk = reader.next();
      if (chunk === null) break;
      bytes += chunk.length;
      tar.push(chunk);
      reader.release();
    }
    tar.finish();
    applier.stats.inputWaitMs = reader.waitedMs;
    applier.finish();
    return { ok: true, stats: applier.stats, uncompressedBytes: bytes, tarEntries: tar.entries };
  } catch (e) {
    reader.fail();
    if (e instanceof RingAborted) return { ok: false, aborted: true, kind: 'corrupt', message: e.message };
    if (e instanceof UnpackError) return { ok: false, aborted: false, kind: e.kind, message: e.message, errno: e.errno };
    const code = (e as { code?: string }).code;
    return { ok: false, aborted: false, kind: 'io', message: e instanceof Error ? e.message : String(e), errno: code };
  } finally {
    applier?.close();
  }
}

parentPort?.on('message', (input: WorkerInput) => parentPort?.postMessage(run(input)));
