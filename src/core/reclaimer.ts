/**
 * Frees the storage of removed snapshots in the background, so Remove answers as soon as the metadata is gone.
 * The queue is a table in the metadata store: a crash mid-way resumes at the next start. One id at a time keeps
 * the disk free for the work containers are waiting on (deleting big trees slows ext4 badly; DESIGN.md).
 */
import type { Driver } from '../../drivers/driver';
import type { Logger } from './log';
import type { MetadataStore } from '../metadata/store';

export class Reclaimer {
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly store: MetadataStore,
    private readonly driver: Driver,
    private readonly log: Logger,
  ) {}

  /** Starts a pass over the queue unless one is running. */
  kick(): void {
    if (this.stopped || this.running) return;
    this.running = this.pass().finally(() => {
      this.running = undefined;
    });
  }

  /** Runs the queue to its end and returns the ids freed (Cleanup waits on this). */
  async drain(): Promise<number[]> {
    if (this.running) await this.running;
    const freed: number[] = [];
    for (const id of this.store.pendingReclaims()) {
      if (await this.reclaimOne(id)) freed.push(id);
    }
    return freed;
  }

  private async pass(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      const ids = this.store.pendingReclaims();
      if (ids.length === 0) return;
      let progressed = false;
      for (const id of ids) {
        if (this.stopped) return;
        if (await this.reclaimOne(id)) progressed = true;
        // Yield between snapshots so calls waiting on the event loop go first.
        await new Promise((r) => setImmediate(r));
      }
      if (!progressed) return; // every id failed: leave them for Cleanup or the next start
    }
  }

  private async reclaimOne(id: number): Promise<boolean> {
    try {
      const t0 = process.hrtime.bigint();
      await this.driver.remove(id);
      this.store.reclaimDone(id);
      this.log.debug('storage reclaimed', { id, ms: Number(process.hrtime.bigint() - t0) / 1e6 });
      return true;
    } catch (e) {
      this.log.warn('cannot reclaim storage; will retry', { id, err: e as Error });
      return false;
    }
  }

  /** Stops after the snapshot being freed; the rest stays queued. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.running) await this.running;
  }
}
