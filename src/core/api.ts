/**
 * What the Snapshotter core offers to every front end (the containerd gRPC service, strata's own services,
 * the Docker volume plugin, tests). Implemented once in snapshotter.ts.
 */
import type { ApplyTarget, ChangeSet, DriverUsage, OpenDir, SnapshotRef } from '../../drivers/driver';
import type { Info, Labels, Mount } from './types';

export interface SnapshotterApi {
  prepare(key: string, parent: string, labels: Labels): Promise<Mount[]>;
  view(key: string, parent: string, labels: Labels): Promise<Mount[]>;
  /**
   * An active snapshot that only strata's layer applier writes, committed or removed right after (Layers.Unpack):
   * the driver may share the parent's files with it instead of copying them (CreateOptions.applyOnly).
   */
  prepareForApply(key: string, parent: string): Promise<void>;
  mounts(key: string): Promise<Mount[]>;
  /** Commits active `key` as `name`. `parent`, when given and different, rebases (drivers with canRebase). */
  commit(name: string, key: string, labels: Labels, parent?: string): Promise<void>;
  remove(key: string): Promise<void>;
  stat(key: string): Info;
  /** Updates labels only; fieldPaths are containerd's (`labels`, `labels.<key>`); empty = all mutable fields. */
  update(info: Pick<Info, 'name' | 'labels'>, fieldPaths: string[]): Info;
  /** Every snapshot matching any of the filter strings (containerd filter syntax), in batches. */
  list(filters: string[], batchSize?: number): Generator<Info[]>;
  usage(key: string): Promise<DriverUsage>;
  /** Reclaims storage with no metadata and work a crash left half-done. */
  cleanup(): Promise<CleanupReport>;

  /** The driver-level reference of a snapshot, for strata's own services (unpack, diff, info). */
  ref(key: string): SnapshotRef;
  /** The writable layer of active `key`, for applying a layer into. */
  openApplyTarget(key: string): Promise<ApplyTarget>;
  /** The whole tree of `key` (any kind), read-only use. */
  openTree(key: string): Promise<OpenDir>;
  /** The own changes of `key` where its driver stores them as a change set (Driver.openChanges), else null. */
  openChanges(key: string): Promise<ChangeSet | null>;
}

export interface CleanupReport {
  /** Snapshot ids whose storage was reclaimed. */
  reclaimed: number[];
}
