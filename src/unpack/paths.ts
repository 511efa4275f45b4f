/**
 * Turning an archive name into components the applier may use. Absolute names are taken relative to the root
 * (what GNU tar and containerd do); `..` components are refused outright: no legitimate layer writer produces
 * them, and a layer that does is either broken or an attack. Every component handed to a syscall is then a
 * single name (no `/`, never `.` or `..`), and the parent is resolved with RESOLVE_IN_ROOT.
 */
import { UnpackError } from './errors';

export interface PathLimits {
  /** Longest name in bytes (PATH_MAX minus the NUL). */
  maxPathBytes: number;
  /** Most components. */
  maxDepth: number;
}

export const DEFAULT_PATH_LIMITS: PathLimits = { maxPathBytes: 4095, maxDepth: 1024 };

/** The components of name, [] for the root itself. */
export function splitName(name: string, what: string, limits: PathLimits = DEFAULT_PATH_LIMITS): string[] {
  if (name.length === 0) throw new UnpackError('corrupt', `empty ${what}`);
  if (name.includes('\0')) throw new UnpackError('unsafe', `${what} ${JSON.stringify(name)} contains a NUL byte`);
  // Byte lengths: an ASCII name (nearly all) has as many bytes as characters.
  const ascii = isAscii(name);
  const bytes = ascii ? name.length : Buffer.byteLength(name);
  if (bytes > limits.maxPathBytes) {
    throw new UnpackError('limit', `${what} of ${bytes} bytes exceeds the limit of ${limits.maxPathBytes}`);
  }
  const parts = name.split('/');
  const out: string[] = [];
  for (const p of parts) {
    if (p === '' || p === '.') continue;
    if (p === '..') throw new UnpackError('unsafe', `${what} ${JSON.stringify(name)} contains a ".." component`);
    if (p.length > 255 / 3 && (ascii ? p.length : Buffer.byteLength(p)) > 255) throw new UnpackError('limit', `a component of ${what} ${JSON.stringify(name.slice(0, 80))}… is longer than 255 bytes`);
    out.push(p);
  }
  if (out.length > limits.maxDepth) throw new UnpackError('limit', `${what} is ${out.length} levels deep (limit ${limits.maxDepth})`);
  return out;
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/**
 * A cheap 52-bit fingerprint of a path, for remembering "created by this layer" in bounded memory: a million
 * entries cost ~20 MB as numbers instead of ~100 MB as strings. A collision can only make the applier keep a
 * lower entry an opaque marker should have removed; with 52 bits that needs ~2^26 entries to become likely.
 */
export function pathKey(p: string): number {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995) ^ (h2 >>> 15);
  }
  return (h1 >>> 0) * 0x100000 + ((h2 >>> 0) & 0xfffff);
}
