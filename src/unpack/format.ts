/** Sizes and rates the unpack-family commands (apply, unpack, import, diff) print the same way. */

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function formatRate(bytes: number, ms: number): string {
  const mbs = ms > 0 ? bytes / 1e6 / (ms / 1000) : 0;
  return `${formatBytes(bytes)} in ${(ms / 1000).toFixed(2)} s (${mbs.toFixed(0)} MB/s)`;
}
