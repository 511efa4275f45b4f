/**
 * Output for snapctl: aligned tables and human sizes/times for people, JSON for scripts. No dependency: a table
 * is a few lines of padding, and owning it keeps the output stable for tests and scripts that grep it.
 */
import type { CliIO } from './command';

/** snapctl strips the global `--json` and tells commands through the environment it hands them. */
export const OUTPUT_ENV = 'SNAPCTL_OUTPUT';

export function wantsJson(io: CliIO): boolean {
  return io.env[OUTPUT_ENV] === 'json';
}

/** Display width: code points, so box-drawing characters and non-ASCII keys line up. */
function width(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Columns separated by three spaces (docker/ctr style); the last column is not padded. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [headers, ...rows];
  const widths = headers.map((_, c) => Math.max(...all.map((r) => width(r[c] ?? ''))));
  const line = (r: readonly string[]): string =>
    r
      .map((cell, c) => (c === r.length - 1 ? cell : cell + ' '.repeat(widths[c]! - width(cell))))
      .join('   ')
      .trimEnd();
  return all.map(line).join('\n') + '\n';
}

/** `key: value` lines with the values aligned, for one object (info, status); an empty key continues a list. */
export function keyValues(pairs: readonly (readonly [string, string])[]): string {
  const w = Math.max(0, ...pairs.map(([k]) => width(k)));
  const line = ([k, v]: readonly [string, string]): string =>
    (k === '' ? ' '.repeat(w + 2) : `${k}:${' '.repeat(w - width(k) + 1)}`) + v;
  return pairs.map((p) => line(p).trimEnd()).join('\n') + '\n';
}

/** Dates become ISO strings (JSON.stringify does that); two-space indent so a person can read it too. */
export function json(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 0 B, 512 B, 1.5 KiB, 12.3 MiB, 120 GiB: three significant digits, IEC units like du -h and df -h. */
export function humanSize(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return String(bytes);
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  if (u === 0) return `${v} B`;
  const s = v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return `${s.includes('.') ? s.replace(/\.?0+$/, '') : s} ${UNITS[u]}`;
}

/** "just now", "5 seconds ago", "3 minutes ago", "2 days ago": how `docker ps` shows ages. */
export function humanAge(then: Date, now: Date = new Date()): string {
  const s = Math.floor((now.getTime() - then.getTime()) / 1000);
  if (then.getTime() <= 0) return '-';
  if (s < 1) return 'just now';
  const steps: [number, string][] = [
    [60, 'second'],
    [60, 'minute'],
    [24, 'hour'],
    [30, 'day'],
    [12, 'month'],
    [Infinity, 'year'],
  ];
  let v = s;
  for (const [per, unit] of steps) {
    if (v < per) return `${v} ${unit}${v === 1 ? '' : 's'} ago`;
    v = Math.floor(v / per);
  }
  return then.toISOString();
}

/** A duration given in microseconds: 42 µs, 1.23 ms, 2.5 s. */
export function humanMicros(us: number): string {
  if (us < 1000) return `${us < 10 ? us.toFixed(1) : us.toFixed(0)} µs`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(us < 10_000 ? 2 : 1)} ms`;
  return `${(us / 1_000_000).toFixed(2)} s`;
}

/** Single-quotes a word for sh when it holds anything a shell would interpret. */
export function shellQuote(s: string): string {
  if (s !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
