/**
 * The contract of a volume backend: it owns a volume's bytes on disk (a directory, a btrfs subvolume, a ZFS
 * dataset) at a path the engine chooses (`<root>/volumes/<id>`); names, references and state live in the engine.
 * Every operation is idempotent where a crash can interrupt it (remove, restore).
 */
import type { BackendData } from '../store';
import type { BackendName, VolumeUsage } from '../types';

/** Where a new volume goes. */
export interface VolumeTarget {
  id: number;
  /** Absolute path inside `<root>/volumes/`, not existing yet. */
  path: string;
  /** Bytes; 0 = no limit. */
  sizeLimit: number;
}

/** An existing volume as the backend left it. */
export interface StoredVolume extends VolumeTarget {
  readonly: boolean;
  data: BackendData;
}

export interface VolumeBackend {
  readonly name: BackendName;
  /**
   * True when a snapshot or clone keeps using its origin's storage so the origin cannot be removed first (ZFS
   * clones). The engine then refuses to remove an origin that still has copies.
   */
  readonly copiesDependOnOrigin: boolean;
  /** Prepares `<root>/volumes` (and any parent dataset). Called once before anything else. */
  init(): Promise<void>;
  /** Why size limits cannot be enforced here, or undefined when they can. */
  sizeLimitUnsupported(): string | undefined;
  /** Creates an empty volume; returns what the backend must remember about it. */
  create(target: VolumeTarget): Promise<BackendData>;
  /** Creates target as a point-in-time copy of src: read-only (a snapshot) or writable (a clone). */
  copy(src: StoredVolume, target: VolumeTarget, readonly: boolean): Promise<BackendData>;
  /** Re-establishes what does not survive a reboot (read-only bind mounts); a no-op when it is in place. */
  restore(vol: StoredVolume): Promise<void>;
  /** Frees everything of the volume; succeeds when it is already (partly) gone. */
  remove(vol: StoredVolume): Promise<void>;
  usage(vol: StoredVolume): Promise<VolumeUsage>;
  /** Facts for `inspect` and logs (backing filesystem, quota support). */
  status(): Record<string, string>;
}
