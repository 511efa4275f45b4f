/** The volume model shared by the engine, its backends and its front ends (gRPC, Docker plugin, snapctl). */
import type { Labels } from '../core/types';

export type BackendName = 'dir' | 'btrfs' | 'zfs';

/** How a volume came to be: empty, a read-only snapshot of another, or a writable clone of one. */
export type VolumeOrigin = 'snapshot' | 'clone';

export interface Volume {
  id: number;
  name: string;
  backend: BackendName;
  /** The host path handed out for bind mounts; always inside `<root>/volumes/`. */
  path: string;
  readonly: boolean;
  /** Bytes; 0 = no limit. */
  sizeLimit: number;
  labels: Labels;
  /** The options it was created with (Docker's `-o`), kept for `inspect`. */
  options: Record<string, string>;
  origin?: { kind: VolumeOrigin; name: string };
  created: Date;
  /** ready, or creating/removing while an operation (or crash recovery) is under way. */
  state: 'creating' | 'ready' | 'removing';
  /** Caller IDs holding a mount reference, with how many times each mounted it. */
  refs: Record<string, number>;
}

export interface VolumeUsage {
  /** Bytes used by the volume's own data. */
  size: number;
  inodes: number;
  /** Bytes; 0 = no limit. */
  limit: number;
  /** quota (project quota), qgroup (btrfs), dataset (ZFS) or walk (a tree walk, no accounting). */
  method: 'quota' | 'qgroup' | 'dataset' | 'walk';
}

export interface CreateVolumeRequest {
  name: string;
  /** Bytes; 0 or unset = no limit. */
  sizeLimit?: number;
  labels?: Labels;
  /** Create as a read-only point-in-time snapshot of this volume. */
  snapshotOf?: string;
  /** Create as a writable copy of this volume. */
  cloneOf?: string;
  options?: Record<string, string>;
}
