/**
 * zstd decompressed in place into the apply ring. zstd-napi's DecompressStream allocates a fresh 128 KiB Buffer
 * per call and pushes it through a Transform, and the engine then copied each one into the ring: on the
 * benchmark's 345 MB base layer that machinery (allocation, page faults, stream events, the copy) cost the main
 * thread more CPU than zstd itself. Here ZSTD_decompressStream writes straight into the ring's free run, the
 * bytes are hashed and checked there, then handed to the worker.
 */
import type { DCtx } from 'zstd-napi/binding';
import { UnpackError } from './errors';
import type { RingWriter } from './ring';

/** Largest run decompressed at once: the worker gets bytes early instead of after 4 MiB bursts. */
const RUN = 256 << 10;

export interface ZstdSink {
  /** Compressed bytes read (for the ratio check and progress). */
  input(bytes: number): void;
  /** Uncompressed bytes written into the ring, before the worker can see them; may throw to refuse them. */
  output(view: Uint8Array): void;
}

/**
 * Decompresses every chunk (`first`, then the rest of `chunks`) into the ring. Resolves false when the worker
 * stopped reading; throws UnpackError on a corrupt or truncated stream.
 */
export async function zstdIntoRing(first: Buffer, chunks: AsyncIterator<Buffer>, ring: RingWriter, sink: ZstdSink): Promise<boolean> {
  // Loaded here: a plain or gzip layer never needs the native zstd binding.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { DCtx: Ctx } = require('zstd-napi/binding') as { DCtx: new () => DCtx };
  const dctx = new Ctx();
  // Whether the last call ended inside a frame: true at the end of input means the stream was cut short.
  let inFrame = false;
  let chunk: Buffer | null = first;
  while (chunk !== null) {
    sink.input(chunk.length);
    let src: Uint8Array = chunk;
    for (;;) {
      const room = await ring.reserve(RUN);
      if (room === null) return false;
      let ret: number;
      let produced: number;
      let consumed: number;
      try {
        [ret, produced, consumed] = dctx.decompressStream(room, src);
      } catch (e) {
        throw new UnpackError('corrupt', `zstd stream: ${(e as Error).message}`);
      }
      if (produced > 0) {
        sink.output(room.subarray(0, produced));
        ring.commit(produced);
      }
      src = src.subarray(consumed);
      // Input used up and zstd has nothing more to flush (it would have filled the run otherwise).
      if (src.length === 0 && (produced < room.length || ret === 0)) {
        inFrame = ret !== 0;
        break;
      }
    }
    const r = await chunks.next();
    chunk = r.done ? null : r.value;
  }
  if (inFrame) throw new UnpackError('truncated', 'zstd stream truncated: it ends in the middle of a frame');
  return true;
}
