/**
 * Volume names and size options. A name becomes part of Docker's API, a ZFS dataset property and log lines, so it
 * is held to Docker's own charset for named volumes; on-disk paths use the volume's numeric id instead, so even
 * a valid name never reaches the filesystem.
 */
import { invalidArgument } from '../core/errors';

/** Docker's RestrictedNameChars for volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]`. */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** Long enough for Docker's 64-hex anonymous volumes plus a prefix; short enough for dataset names and tables. */
export const MAX_NAME_LENGTH = 128;

export function validateName(name: unknown, what = 'volume name'): string {
  if (typeof name !== 'string' || name.length === 0) throw invalidArgument(`${what} is required`);
  if (name.length > MAX_NAME_LENGTH) throw invalidArgument(`${what} "${name.slice(0, 32)}…" is longer than ${MAX_NAME_LENGTH} characters`);
  if (name.includes('/') || name.includes('\\') || name.includes('\0')) {
    throw invalidArgument(`${what} "${name}" must not contain path separators`);
  }
  if (name.includes('..')) throw invalidArgument(`${what} "${name}" must not contain ".."`);
  if (!NAME_RE.test(name)) {
    throw invalidArgument(`${what} "${name}" has characters outside [a-zA-Z0-9_.-] or does not start with a letter or digit`);
  }
  return name;
}

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/**
 * Parses a size like Docker's `-o size=64M`: binary units (k, m, g, t, p; optional trailing "b"/"ib"), as Docker's
 * own RAMInBytes does, so 64M means 64 MiB everywhere.
 */
export function parseSize(text: string | number, what = 'size'): number {
  if (typeof text === 'number') {
    if (!Number.isSafeInteger(text) || text < 0) throw invalidArgument(`${what} must be a non-negative integer`);
    return text;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?\s*$/i.exec(text);
  if (!m) throw invalidArgument(`${what} "${text}" is not a size (e.g. 512M, 10G, 1048576)`);
  const bytes = Math.floor(Number(m[1]) * UNITS[m[2].toLowerCase()]);
  if (!Number.isSafeInteger(bytes)) throw invalidArgument(`${what} "${text}" is too large`);
  return bytes;
}

export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v}B` : `${v.toFixed(v < 10 ? 1 : 0)}${units[i]}`;
}
