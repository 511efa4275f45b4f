/**
 * containerd's snapshot semantics, implemented once over a metadata store and a driver.
 *
 * State changes (Prepare, View, Commit, Remove, Update, Cleanup) run one at a time under a mutex: each is a
 * database transaction plus driver work that must not interleave with another change to the same tree. Reads
 * (Stat, List, Mounts, Usage) never wait for it. The order of steps makes every crash point recoverable:
 *
 * - Prepare/View: insert the row as "creating" → driver.create → mark ready. A crash leaves a creating row,
 *   rolled back (and its storage reclaimed) at the next start.
 * - Commit: driver.commit (idempotent) → one transaction renames the key and flips the kind.
 * - Remove: one transaction deletes the row and queues the id; the bytes go in the background (Reclaimer).
 */
import type { Driver, DriverUsage, SnapshotRef } from '../../drivers/driver';
import type { CleanupReport, SnapshotterApi } from './api';
import { alreadyExists, failedPrecondition, invalidArgument, notFound, toStrataError } from './errors';
import { parseFilters } from './filters';
import { sizeLimitFromLabels, validateLabels } from './labels';
import type { Logger } from './log';
import { Mutex } from './mutex';
import type { Reclaimer } from './reclaimer';
import type { Info, Kind, Labels, Mount } from './types';
import type { MetadataStore, SnapshotRow } from '../metadata/store';

export interface SnapshotterOptions {
  store: MetadataStore;
  driver: Driver;
  reclaimer: Reclaimer;
  log: Logger;
  /** A size limit for every new writable snapshot when its labels set none (config). */
  defaultSizeLimit?: number;
}

/**
 * One frozen Info per metadata row. Rows are immutable and replaced on every change, so the same Info object
 * stands for the same state: the server caches its encoding on that identity (server/info-codec.ts).
 */
const infoOfRow = new WeakMap<SnapshotRow, Info>();

function toInfo(row: SnapshotRow): Info {
  let info = infoOfRow.get(row);
  if (!info) {
    info = Object.freeze({ name: row.key, parent: row.parentKey, kind: row.kind, created: row.created, updated: row.updated, labels: row.labels });
    infoOfRow.set(row, info);
  }
  return info;
}

export class Snapshotter implements SnapshotterApi {
  private readonly store: MetadataStore;
  private readonly driver: Driver;
  private readonly reclaimer: Reclaimer;
  private readonly log: Logger;
  private readonly mutex = new Mutex();

  constructor(private readonly opts: SnapshotterOptions) {
    this.store = opts.store;
    this.driver = opts.driver;
    this.reclaimer = opts.reclaimer;
    this.log = opts.log;
  }

  private row(key: string): SnapshotRow {
    if (key === '') throw invalidArgument('snapshot key must not be empty');
    const row = this.store.get(key);
    if (!row) throw notFound(`snapshot ${JSON.stringify(key)} does not exist`);
    return row;
  }

  private refOf(row: SnapshotRow): SnapshotRef {
    return { id: row.id, kind: row.kind, parents: row.parentId === null ? [] : [row.parentId, ...this.store.ancestors(row.parentId)] };
  }

  ref(key: string): SnapshotRef {
    return this.refOf(this.row(key));
  }

  prepare(key: string, parent: string, labels: Labels): Promise<Mount[]> {
    return this.create('active', key, parent, labels);
  }

  async prepareForApply(key: string, parent: string): Promise<void> {
    await this.create('active', key, parent, {}, true);
  }

  view(key: string, parent: string, labels: Labels): Promise<Mount[]> {
    return this.create('view', key, parent, labels);
  }

  private create(kind: Exclude<Kind, 'committed'>, key: string, parent: string, labels: Labels, applyOnly = false): Promise<Mount[]> {
    return this.mutex.run(async () => {
      if (key === '') throw invalidArgument('snapshot key must not be empty');
      validateLabels(labels);
      const sizeLimit = kind === 'active' ? (sizeLimitFromLabels(labels) ?? this.opts.defaultSizeLimit ?? null) : null;
      let parentRow: SnapshotRow | undefined;
      if (parent !== '') {
        parentRow = this.store.get(parent);
        if (!parentRow) throw notFound(`parent snapshot ${JSON.stringify(parent)} does not exist`);
        if (parentRow.kind !== 'committed') throw invalidArgument(`parent ${JSON.stringify(parent)} is not a committed snapshot`);
      }
      if (this.store.keyTaken(key)) throw alreadyExists(`snapshot ${JSON.stringify(key)} already exists`);
      const id = this.store.insertCreating({ key, parentId: parentRow?.id ?? null, kind, labels, sizeLimit });
      const ref: SnapshotRef = { id, kind, parents: parentRow ? [parentRow.id, ...this.store.ancestors(parentRow.id)] : [] };
      try {
        await this.driver.create(ref, { ...(sizeLimit === null ? {} : { sizeLimit }), ...(applyOnly ? { applyOnly } : {}) });
        const mounts = await this.driver.mounts(ref);
        this.store.markReady(id);
        this.log.debug('snapshot created', { key, id, kind, parent });
        return mounts;
      } catch (e) {
        // The row never became visible: drop it and let the reclaimer free whatever the driver made.
        this.store.deleteAndQueueReclaim(id);
        this.reclaimer.kick();
        throw toStrataError(e, `creating ${kind} snapshot ${JSON.stringify(key)}`);
      }
    });
  }

  async mounts(key: string): Promise<Mount[]> {
    const row = this.row(key);
    if (row.kind === 'committed') throw failedPrecondition(`snapshot ${JSON.stringify(key)} is committed: only active and view snapshots have mounts`);
    try {
      return await this.driver.mounts(this.refOf(row));
    } catch (e) {
      throw toStrataError(e, `mounts of ${JSON.stringify(key)}`);
    }
  }

  commit(name: string, key: string, labels: Labels, parent?: string): Promise<void> {
    return this.mutex.run(async () => {
      if (name === '') throw invalidArgument('committed snapshot name must not be empty');
      validateLabels(labels);
      const row = this.row(key);
      if (row.kind !== 'active') throw failedPrecondition(`snapshot ${JSON.stringify(key)} is a ${row.kind} snapshot: only active snapshots can be committed`);
      if (name !== key && this.store.keyTaken(name)) throw alreadyExists(`snapshot ${JSON.stringify(name)} already exists`);
      let parentId = row.parentId;
      if (parent !== undefined && parent !== '' && parent !== row.parentKey) {
        if (!this.driver.canRebase) throw failedPrecondition(`the ${this.driver.name} driver cannot rebase ${JSON.stringify(key)} onto ${JSON.stringify(parent)}`);
        const p = this.store.get(parent);
        if (!p) throw notFound(`parent snapshot ${JSON.stringify(parent)} does not exist`);
        if (p.kind !== 'committed') throw invalidArgument(`parent ${JSON.stringify(parent)} is not a committed snapshot`);
        parentId = p.id;
      }
      try {
        await this.driver.commit(this.refOf(row));
      } catch (e) {
        throw toStrataError(e, `committing ${JSON.stringify(key)}`);
      }
      this.store.commit(row.id, name, labels, parentId);
      this.log.debug('snapshot committed', { key, name, id: row.id });
    });
  }

  remove(key: string): Promise<void> {
    return this.mutex.run(async () => {
      const row = this.row(key);
      if (this.store.hasChildren(row.id)) throw failedPrecondition(`cannot remove snapshot ${JSON.stringify(key)}: it has children`);
      this.store.deleteAndQueueReclaim(row.id);
      this.reclaimer.kick();
      this.log.debug('snapshot removed', { key, id: row.id });
    });
  }

  stat(key: string): Info {
    return toInfo(this.row(key));
  }

  update(info: Pick<Info, 'name' | 'labels'>, fieldPaths: string[]): Info {
    if (info.name === '') throw invalidArgument('snapshot name must not be empty');
    // Synchronous, so no other change can interleave: better-sqlite3 runs the whole transaction now.
    return this.store.transaction(() => {
      const row = this.row(info.name);
      const given = info.labels ?? {};
      let labels: Labels;
      if (fieldPaths.length === 0) {
        labels = { ...given };
      } else {
        labels = { ...row.labels };
        for (const p of fieldPaths) {
          if (p === 'labels') {
            labels = { ...given };
          } else if (p.startsWith('labels.')) {
            const k = p.slice('labels.'.length);
            const v = given[k];
            if (v === undefined || v === '') delete labels[k];
            else labels[k] = v;
          } else {
            throw invalidArgument(`cannot update ${JSON.stringify(p)} field on snapshot ${JSON.stringify(info.name)}: only labels can change`);
          }
        }
      }
      validateLabels(labels);
      this.store.setLabels(row.id, labels);
      return toInfo(this.row(info.name));
    });
  }

  *list(filters: string[], batchSize = 100): Generator<Info[]> {
    const match = parseFilters(filters);
    let batch: Info[] = [];
    for (const row of this.store.all()) {
      const info = toInfo(row);
      if (!match(info)) continue;
      batch.push(info);
      if (batch.length >= batchSize) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
  }

  async usage(key: string): Promise<DriverUsage> {
    const row = this.row(key);
    // A committed layer never changes: measure it once and keep the figure.
    if (row.kind === 'committed' && row.usageSize !== null && row.usageInodes !== null) {
      return { size: row.usageSize, inodes: row.usageInodes, method: (row.usageMethod ?? 'walk') as DriverUsage['method'] };
    }
    let u: DriverUsage;
    try {
      u = await this.driver.usage(this.refOf(row));
    } catch (e) {
      throw toStrataError(e, `usage of ${JSON.stringify(key)}`);
    }
    if (row.kind === 'committed') this.store.setUsage(row.id, u.size, u.inodes, u.method);
    return u;
  }

  cleanup(): Promise<CleanupReport> {
    return this.mutex.run(async () => {
      const reclaimed = await this.reclaimer.drain();
      const known = this.store.knownIds();
      for (const id of await this.driver.listOnDisk()) {
        if (known.has(id)) continue;
        try {
          await this.driver.remove(id);
          reclaimed.push(id);
          this.log.info('reclaimed orphaned storage', { id });
        } catch (e) {
          this.log.warn('cannot reclaim orphaned storage', { id, err: e as Error });
        }
      }
      return { reclaimed };
    });
  }

  async openApplyTarget(key: string) {
    const row = this.row(key);
    if (row.kind !== 'active') throw failedPrecondition(`snapshot ${JSON.stringify(key)} is ${row.kind}: layers are applied into active snapshots`);
    return this.driver.openApplyTarget(this.refOf(row));
  }

  async openTree(key: string) {
    return this.driver.openTree(this.refOf(this.row(key)));
  }

  async openChanges(key: string) {
    const ref = this.refOf(this.row(key));
    return this.driver.openChanges ? this.driver.openChanges(ref) : null;
  }
}
