/**
 * The graph-driver contract. A driver owns bytes on disk only; containerd's semantics (keys, kinds, parents,
 * labels, filters, errors) live once in src/core/snapshotter.ts. Snapshots reach a driver as small integer ids
 * allocated by the metadata store and never reused, so a driver may keep per-id state on disk
 * (`<root>/snapshots/<id>`, a subvolume, a dataset, a thin device id) and a background reclaim of an old id can
 * never collide with a new snapshot.
 */
import type { Kind, Mount, Usage } from '../src/core/types';

/** How a layer's deletions are written: overlay's whiteout devices/opaque xattrs, or real deletions. */
export type WhiteoutForm = 'overlay' | 'delete';

export interface SnapshotRef {
  id: number;
  kind: Kind;
  /** Committed ancestors' ids, nearest first (parents[0] is the direct parent). Empty for a base snapshot. */
  parents: readonly number[];
}

export interface CreateOptions {
  /** Hard limit in bytes on the snapshot's writable layer (containerd.io/snapshot/max-size or config). */
  sizeLimit?: number;
  /**
   * Only strata's layer applier writes this active snapshot, and it is committed (or removed) right after. The
   * applier replaces entries and never writes into an existing file, so a driver may share the parent's files
   * with it instead of copying them (native: hard links). Its mounts, should anyone ask, are read-only.
   */
  applyOnly?: boolean;
}

/** A directory the caller may read or write for a while; release() undoes any mount made for it. */
export interface OpenDir {
  dir: string;
  release(): Promise<void>;
}

/** Where a layer tar is applied for a snapshot, and in which form. */
export interface ApplyTarget extends OpenDir {
  whiteouts: WhiteoutForm;
  /** The lower layers' directories, nearest first: an overlay-form applier consults them (DESIGN.md). */
  lowerDirs: string[];
  /**
   * Where overlay keeps its own xattrs (opaque dirs): 'trusted.overlay.', or 'user.overlay.' when the driver
   * mounts with userxattr (outside the initial user namespace). Only meaningful for whiteouts: 'overlay'.
   */
  overlayXattrPrefix?: 'trusted.overlay.' | 'user.overlay.';
}

/** A snapshot's own changes as an overlay upper dir holds them: whiteout devices, opaque xattrs under prefix. */
export interface ChangeSet extends OpenDir {
  overlayPrefix: 'trusted.overlay.' | 'user.overlay.';
}

export interface DriverUsage extends Usage {
  /** How the figure was obtained, shown by `snapctl info`: O(1) accounting or a walk of the tree. */
  method: 'quota' | 'qgroup' | 'dataset' | 'thin' | 'walk';
}

export interface Driver {
  readonly name: DriverName;
  readonly whiteouts: WhiteoutForm;
  /**
   * True when a committed layer's bytes do not depend on its parent's, so Commit may give it a new parent
   * (containerd 2.x's `rebase` capability). Only overlay's layers are independent of their parents.
   */
  readonly canRebase: boolean;

  /** Prepares the driver's root (directories, pools, mounts). Called once at startup. */
  init(): Promise<void>;
  /** Creates storage for a new active or view snapshot on top of snap.parents. */
  create(snap: SnapshotRef, opts: CreateOptions): Promise<void>;
  /** The mounts containerd performs to see an active or view snapshot. */
  mounts(snap: SnapshotRef): Promise<Mount[]>;
  /**
   * Makes an active snapshot's layer immutable. Idempotent: after a crash between this and the metadata update
   * the core calls it again.
   */
  commit(snap: SnapshotRef): Promise<void>;
  /** Frees everything stored for id. Idempotent; runs in the background after the metadata is gone. */
  remove(id: number): Promise<void>;
  usage(snap: SnapshotRef): Promise<DriverUsage>;
  /** The writable layer of an active snapshot, for applying a layer tar into. */
  openApplyTarget(snap: SnapshotRef): Promise<ApplyTarget>;
  /** The snapshot's whole tree (its layer over its parents), read-only use, for diffs and debugging. */
  openTree(snap: SnapshotRef): Promise<OpenDir>;
  /**
   * The snapshot's own changes, where the driver stores them as a change set (overlay's layers, native's layer
   * deltas): a diff is then one walk of them instead of a comparison of two whole trees. Null otherwise.
   */
  openChanges?(snap: SnapshotRef): Promise<ChangeSet | null>;
  /** Ids that have storage on disk, so Cleanup can reclaim those the metadata does not know. */
  listOnDisk(): Promise<number[]>;
  /** Driver-wide facts for `snapctl info`/logs (backing filesystem, pool usage, quota support). */
  status(): Promise<Record<string, string>>;
  close(): Promise<void>;
}

export type DriverName = 'overlay' | 'native' | 'btrfs' | 'zfs' | 'devmapper';

/** Driver-specific settings from the config file's `[driver.<name>]` table. */
export type DriverConfig = Record<string, string | number | boolean>;

export interface DriverOptions {
  /** strata's root directory; the driver keeps its storage below it (or in its pool/dataset). */
  root: string;
  config: DriverConfig;
}

export interface ProbeResult {
  ok: boolean;
  /** Why the driver cannot work here, phrased for the operator. */
  reason?: string;
}
