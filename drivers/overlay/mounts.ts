/**
 * The mounts containerd performs for an overlay snapshot, following containerd's overlay snapshotter:
 *
 * - no parent: a bind of the snapshot's own fs (rw for an active, ro for a view);
 * - a view of exactly one parent: a read-only bind of that parent's fs (an overlay needs two lowers or an upper);
 * - a view of several parents: an overlay of the lowers only, which the kernel makes read-only;
 * - an active with parents: an overlay with lowerdir (nearest first), upperdir and workdir.
 *
 * mount(2) takes one page of data. containerd (and src/core/mount.ts) rewrite a long lowerdir relative to the
 * lowers' common parent, so `<root>/snapshots/<id>/fs` costs `<id>/fs:` per layer: 500 layers fit while ids
 * have up to 3 digits (actives) or 4 (views). Beyond that the lowers are named through `<root>/l/<base36 id>`
 * symlinks to `../snapshots/<id>/fs`, a few bytes each, which fits 500 layers for any id below 36^4.
 * (`lowerdir+=` does not help here: through mount(2) its options share the same page; only fsconfig(2)
 * lifts the limit, and containerd mounts with mount(2).)
 */
import type { Mount } from '../../src/core/types';
import { MOUNT_DATA_LIMIT, mountData } from '../../src/core/mount';
import type { OverlayFeatures } from './features';

export interface OverlayLayout {
  fs(id: number): string;
  work(id: number): string;
  /** The short alias of a layer's fs (a symlink), used only when the plain paths do not fit in a page. */
  link(id: number): string;
}

export interface MountSnapshot {
  id: number;
  kind: 'active' | 'view' | 'committed';
  parents: readonly number[];
}

export type MountFeatures = Pick<OverlayFeatures, 'userxattr' | 'indexOff'>;

function commonOptions(f: MountFeatures): string[] {
  const o: string[] = [];
  if (f.indexOff) o.push('index=off');
  if (f.userxattr) o.push('userxattr');
  return o;
}

/** Whether a mount's data, as containerd will pass it to mount(2), fits in one page. */
export function fitsInPage(m: Mount): boolean {
  return Buffer.byteLength(mountData(m).data) < MOUNT_DATA_LIMIT;
}

export interface OverlayMounts {
  mounts: Mount[];
  /** Lower ids that must have their short alias on disk (empty when plain paths are used). */
  linksNeeded: number[];
}

/** An overlay of the given lowers (nearest first), with an upper and work dir when upper is given. */
export function overlayMount(lowers: readonly number[], upper: number | undefined, layout: OverlayLayout, f: MountFeatures): OverlayMounts {
  const build = (name: (id: number) => string): Mount => {
    const options = commonOptions(f);
    if (upper !== undefined) options.push(`workdir=${layout.work(upper)}`, `upperdir=${layout.fs(upper)}`);
    options.push(`lowerdir=${lowers.map(name).join(':')}`);
    return { type: 'overlay', source: 'overlay', options };
  };
  const plain = build((id) => layout.fs(id));
  if (fitsInPage(plain)) return { mounts: [plain], linksNeeded: [] };
  return { mounts: [build((id) => layout.link(id))], linksNeeded: [...lowers] };
}

export function snapshotMounts(snap: MountSnapshot, layout: OverlayLayout, f: MountFeatures): OverlayMounts {
  const bind = (id: number, ro: boolean): OverlayMounts => ({
    mounts: [{ type: 'bind', source: layout.fs(id), options: [ro ? 'ro' : 'rw', 'rbind'] }],
    linksNeeded: [],
  });
  const parents = snap.parents;
  if (parents.length === 0) return bind(snap.id, snap.kind !== 'active');
  if (snap.kind !== 'active') {
    if (parents.length === 1) return bind(parents[0]!, true);
    return overlayMount(parents, undefined, layout, f);
  }
  return overlayMount(parents, snap.id, layout, f);
}

/** The alias name of an id: base 36 keeps it at 4 characters up to 1.6 million snapshots. */
export function linkName(id: number): string {
  return id.toString(36);
}
