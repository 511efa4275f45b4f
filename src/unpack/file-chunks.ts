/**
 * A layer blob read from a file (or a byte range of one) into two buffers used in turn: one is read ahead while
 * the caller decompresses the other. A chunk stays valid until the caller asks for the next one.
 *
 * Why not fs.createReadStream: it reads every chunk into a fresh buffer. Each new 1 MiB buffer was page-faulted
 * in and, once garbage, given back to the kernel: on the benchmark's 102 MB gzip base layer that was half of
 * `snapctl apply`'s ~50,000 page faults (perf, event page-faults), all in the threads copying the file into the
 * new buffers.
 */
import * as fs from 'node:fs';

export interface FileRange {
  /** First byte of the blob in the file. */
  offset?: number;
  /** Bytes of the blob from offset (absent: to the end of the file). */
  length?: number;
}

const CHUNK = 1 << 20;

export class FileChunks implements AsyncIterator<Buffer> {
  private readonly fd: Promise<fs.promises.FileHandle>;
  private readonly bufs: [Buffer, Buffer];
  private turn = 0;
  private pos: number;
  private readonly end: number;
  /** The read into bufs[turn], under way. */
  private pending: Promise<number> | null = null;
  private closed = false;

  constructor(file: string, range: FileRange = {}, chunkBytes = CHUNK) {
    this.pos = range.offset ?? 0;
    this.end = range.length === undefined ? Infinity : this.pos + range.length;
    this.bufs = [Buffer.allocUnsafeSlow(chunkBytes), Buffer.allocUnsafeSlow(chunkBytes)];
    this.fd = fs.promises.open(file, 'r');
    // Reported by the first next(); unobserved until then.
    this.fd.catch(() => undefined);
  }

  async next(): Promise<IteratorResult<Buffer>> {
    if (this.closed) return { done: true, value: undefined };
    const n = await (this.pending ?? this.read());
    const buf = this.bufs[this.turn]!;
    if (n === 0) {
      await this.return();
      return { done: true, value: undefined };
    }
    this.pos += n;
    // The caller gave the other buffer back by calling next(): read ahead into it.
    this.turn ^= 1;
    this.pending = this.pos < this.end ? this.read() : Promise.resolve(0);
    // Until the caller asks for it, a failed read-ahead must not count as unhandled.
    this.pending.catch(() => undefined);
    return { done: false, value: buf.subarray(0, n) };
  }

  /** Closes the file (after any read under way); later next() calls are done. */
  async return(): Promise<IteratorResult<Buffer>> {
    if (!this.closed) {
      this.closed = true;
      await this.pending?.catch(() => undefined);
      const fh = await this.fd.catch(() => null);
      await fh?.close();
    }
    return { done: true, value: undefined };
  }

  /** Reads into bufs[turn] at pos, both as they are now. */
  private async read(): Promise<number> {
    const buf = this.bufs[this.turn]!;
    const pos = this.pos;
    const want = Math.min(buf.length, this.end - pos);
    const { bytesRead } = await (await this.fd).read(buf, 0, want, pos);
    return bytesRead;
  }
}
