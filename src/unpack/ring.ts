/**
 * A single-producer single-consumer byte ring in a SharedArrayBuffer: the main thread (decompressor) writes,
 * the apply worker reads. It bounds memory whatever the layer size and gives backpressure both ways: the
 * worker blocks (Atomics.wait, it is synchronous by design) when empty, the producer awaits
 * (Atomics.waitAsync, never blocking the event loop) when full. A producer that can write in place (gzip, zstd)
 * reserves a run and commits it; others pay one copy.
 */
import { monotonicMs } from './clock';

/** Control words (Int32 indexes). AVAIL is the only word both sides modify; each side keeps its own offset. */
const AVAIL = 0;
/** 0 running, 1 producer finished (no more bytes), 2 producer failed, 3 consumer failed. */
const STATE = 1;
const CTRL_WORDS = 4;
const MAX_RUN = 1 << 20;

export const RING_STATE = { running: 0, done: 1, producerFailed: 2, consumerFailed: 3 } as const;

export interface RingBuffers {
  ctrl: SharedArrayBuffer;
  data: SharedArrayBuffer;
}

export function createRing(size: number): RingBuffers {
  return reuseRing(new SharedArrayBuffer(size));
}

/**
 * A ring over a data buffer an earlier, finished ring used (both of its sides done with it): fresh control
 * words, so it starts empty and running; the stale bytes are never read (each side starts at offset 0).
 */
export function reuseRing(data: SharedArrayBuffer): RingBuffers {
  return { ctrl: new SharedArrayBuffer(CTRL_WORDS * 4), data };
}

export class RingWriter {
  private readonly ctrl: Int32Array;
  private readonly data: Uint8Array;
  private pos = 0;

  constructor(bufs: RingBuffers) {
    this.ctrl = new Int32Array(bufs.ctrl);
    this.data = new Uint8Array(bufs.data);
  }

  /** Copies all of chunk into the ring, waiting for room. Resolves false when the consumer failed. */
  async write(chunk: Uint8Array): Promise<boolean> {
    let off = 0;
    while (off < chunk.length) {
      const room = await this.reserve(chunk.length - off);
      if (room === null) return false;
      room.set(chunk.subarray(off, off + room.length));
      off += room.length;
      this.commit(room.length);
    }
    return true;
  }

  /**
   * The free run at the write position, at most `max` bytes, waiting while the ring is full; null when the
   * consumer failed. A producer that can write in place (a decompressor) fills it and commits what it wrote,
   * which saves the copy write() makes.
   */
  async reserve(max: number): Promise<Uint8Array | null> {
    const size = this.data.length;
    for (;;) {
      const avail = Atomics.load(this.ctrl, AVAIL);
      if (Atomics.load(this.ctrl, STATE) !== RING_STATE.running) return null;
      if (avail < size) return this.data.subarray(this.pos, this.pos + Math.min(size - avail, size - this.pos, max));
      // Full: sleep until the consumer takes some (it notifies on AVAIL) or fails.
      // The timeout covers a failure signalled between the state check and the wait. A pending waitAsync
      // does not keep the event loop alive; the timer does, so the process cannot exit mid-apply.
      const w = Atomics.waitAsync(this.ctrl, AVAIL, size, 100);
      if (w.async) {
        const keep = setTimeout(() => undefined, 1000);
        await w.value;
        clearTimeout(keep);
      }
    }
  }

  /** Hands the first n bytes of the last reserve() to the consumer. */
  commit(n: number): void {
    if (n === 0) return;
    this.pos = (this.pos + n) % this.data.length;
    Atomics.add(this.ctrl, AVAIL, n);
    Atomics.notify(this.ctrl, AVAIL);
  }

  /** No more bytes: the consumer drains what is left and sees the end. */
  end(): void {
    Atomics.compareExchange(this.ctrl, STATE, RING_STATE.running, RING_STATE.done);
    Atomics.notify(this.ctrl, AVAIL);
  }

  /** The stream failed: the consumer stops at its next read. */
  fail(): void {
    Atomics.compareExchange(this.ctrl, STATE, RING_STATE.running, RING_STATE.producerFailed);
    Atomics.notify(this.ctrl, AVAIL);
  }
}

export class RingReader {
  private readonly ctrl: Int32Array;
  private readonly data: Uint8Array;
  private pos = 0;
  private held = 0;
  /** Time spent waiting for the producer: tells whether decompression or applying bounds an unpack. */
  waitedMs = 0;

  constructor(bufs: RingBuffers) {
    this.ctrl = new Int32Array(bufs.ctrl);
    this.data = new Uint8Array(bufs.data);
  }

  /**
   * The next contiguous run of bytes (blocking until there is one), or null at the end of the stream. Throws
   * when the producer failed. The view stays valid until release().
   */
  next(): Uint8Array | null {
    for (;;) {
      // The state first: the producer commits its last bytes before it ends, so once "done" is seen the AVAIL
      // read after it holds them all. In the other order the producer could commit up to a whole ring and end
      // between the two reads (this thread preempted), and those bytes were lost: seen as a truncated layer.
      const state = Atomics.load(this.ctrl, STATE);
      const avail = Atomics.load(this.ctrl, AVAIL);
      if (avail > 0) {
        // Handing out at most MAX_RUN at a time lets the producer refill while the worker applies.
        const n = Math.min(avail, this.data.length - this.pos, MAX_RUN);
        this.held = n;
        return this.data.subarray(this.pos, this.pos + n);
      }
      if (state === RING_STATE.done) return null;
      if (state === RING_STATE.producerFailed) throw new RingAborted();
      const t0 = monotonicMs();
      Atomics.wait(this.ctrl, AVAIL, 0, 1000);
      this.waitedMs += monotonicMs() - t0;
    }
  }

  /** Gives the bytes of the last next() back to the producer. */
  release(): void {
    this.pos = (this.pos + this.held) % this.data.length;
    Atomics.sub(this.ctrl, AVAIL, this.held);
    Atomics.notify(this.ctrl, AVAIL);
    this.held = 0;
  }

  /** Tells the producer to stop. */
  fail(): void {
    Atomics.store(this.ctrl, STATE, RING_STATE.consumerFailed);
    Atomics.notify(this.ctrl, AVAIL);
  }
}

export class RingAborted extends Error {
  override readonly name = 'RingAborted';
  constructor() {
    super('the layer stream failed');
  }
}
