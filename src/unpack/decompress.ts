/**
 * gzip and zstd decompressed in place into the apply ring: the decompressor writes straight into the ring's free
 * run, the bytes are counted, hashed and checked there, then handed to the worker. A streaming API that returns
 * fresh output buffers (zstd-napi's DecompressStream, Node's zlib streams) cost an allocation, page faults,
 * stream events and a copy into the ring per chunk: on the benchmark's 345 MB base layer that machinery cost the
 * main thread more CPU than zstd itself.
 *
 * gzip: ISA-L's igzip (native/src/gunzip.c says why not zlib). zstd: the system's libzstd (native/src/unzstd.c
 * says why not zstd-napi's copy).
 */
import { native } from '../../native';
import { UnpackError } from './errors';
import type { RingWriter } from './ring';

/** Largest run decompressed at once: the worker gets bytes early instead of after 4 MiB bursts. */
const RUN = 256 << 10;

interface Step {
  consumed: number;
  produced: number;
  /** The stream stopped inside a frame (gzip member): at the end of the input, it was cut short. */
  midFrame: boolean;
  /** Everything decodable from the input so far is out (a full run may still have more to flush otherwise). */
  flushed: boolean;
}

interface Decoder {
  readonly name: 'gzip' | 'zstd';
  /** Decompresses from src into out. Throws UnpackError('corrupt') on corrupt data. */
  step(out: Uint8Array, src: Uint8Array): Step;
  /** Gives the decoder's memory back now rather than at garbage collection. */
  close(): void;
}

export interface DecompressSink {
  /** Compressed bytes read (for the ratio check and progress). */
  input(bytes: number): void;
  /** Uncompressed bytes written into the ring, before the worker can see them; may throw to refuse them. */
  output(view: Uint8Array): void;
}

/**
 * Decompresses every chunk (`first`, then the rest of `chunks`) into the ring. Returns early when the worker
 * stopped reading (its own result says why); throws UnpackError on a corrupt or truncated stream.
 */
export async function decompressIntoRing(
  compression: 'gzip' | 'zstd',
  first: Buffer,
  chunks: AsyncIterator<Buffer>,
  ring: RingWriter,
  sink: DecompressSink,
): Promise<void> {
  const dec = compression === 'gzip' ? gzipDecoder() : zstdDecoder();
  try {
    await decodeAll(dec, first, chunks, ring, sink);
  } finally {
    dec.close();
  }
}

async function decodeAll(dec: Decoder, first: Buffer, chunks: AsyncIterator<Buffer>, ring: RingWriter, sink: DecompressSink): Promise<void> {
  let midFrame = false;
  let chunk: Buffer | null = first;
  while (chunk !== null) {
    sink.input(chunk.length);
    let src: Uint8Array = chunk;
    for (;;) {
      const room = await ring.reserve(RUN);
      if (room === null) return;
      const s = dec.step(room, src);
      if (s.produced > 0) {
        sink.output(room.subarray(0, s.produced));
        ring.commit(s.produced);
      }
      src = src.subarray(s.consumed);
      midFrame = s.midFrame;
      // Input used up and nothing more to flush (the decoder would have filled the run otherwise).
      if (src.length === 0 && (s.produced < room.length || s.flushed)) break;
    }
    const r = await chunks.next();
    chunk = r.done ? null : r.value;
  }
  if (midFrame) {
    throw new UnpackError('truncated', `${dec.name} stream truncated: it ends in the middle of a ${dec.name === 'gzip' ? 'member' : 'frame'}`);
  }
}

function gzipDecoder(): Decoder {
  const n = native();
  const handle = n.gunzipCreate();
  return {
    name: 'gzip',
    step(out, src) {
      let r: [number, number, boolean];
      try {
        r = n.gunzipRun(handle, src, out);
      } catch (e) {
        throw new UnpackError('corrupt', `gzip stream: ${(e as Error).message}`);
      }
      return { consumed: r[0], produced: r[1], midFrame: r[2], flushed: false };
    },
    // 85 KiB of inflate state (its window included): the garbage collector's timing is good enough.
    close() {},
  };
}

function zstdDecoder(): Decoder {
  const n = native();
  const handle = n.unzstdCreate();
  return {
    name: 'zstd',
    step(out, src) {
      let r: [number, number, number];
      try {
        r = n.unzstdRun(handle, src, out);
      } catch (e) {
        throw new UnpackError('corrupt', `zstd stream: ${(e as Error).message}`);
      }
      // ZSTD_decompressStream's hint is 0 when a frame is complete and fully flushed.
      return { consumed: r[0], produced: r[1], midFrame: r[2] !== 0, flushed: r[2] === 0 };
    },
    close() {
      n.unzstdFree(handle);
    },
  };
}
