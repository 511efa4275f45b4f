/** The snapshot model, as containerd defines it. */

export type Kind = 'view' | 'active' | 'committed';

export type Labels = Record<string, string>;

export interface Info {
  /** The key of an active/view snapshot, or the name of a committed one: keys and names share one namespace. */
  name: string;
  /** The parent's name, '' when there is none. */
  parent: string;
  kind: Kind;
  created: Date;
  updated: Date;
  labels: Labels;
}

/** A mount for containerd to perform; the shape of containerd.types.Mount. */
export interface Mount {
  type: string;
  source: string;
  options: string[];
}

export interface Usage {
  /** Bytes used by this snapshot's own layer (not its parents). */
  size: number;
  inodes: number;
}

/** Labels strata interprets itself. */
export const LABEL_MAX_SIZE = 'containerd.io/snapshot/max-size';
