/** What the `snapctl volume …` commands share: the Volumes client on the socket and the one-volume view. */
import { VolumesApiClient } from '../../client/volumes';
import type { Volume } from '../../volumes/types';
import type { CliIO } from '../command';
import { humanAge, humanSize, keyValues } from '../format';
import { addressOf } from './common';

export async function withVolumes<T>(io: CliIO, fn: (c: VolumesApiClient) => Promise<T>): Promise<T> {
  const c = new VolumesApiClient(addressOf(io));
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

export function describeVolume(v: Volume, now = new Date()): string {
  const pairs: [string, string][] = [
    ['Name', v.name],
    ['ID', String(v.id)],
    ['Backend', v.backend],
    ['Path', v.path],
    ['State', v.state],
    ['Read-only', v.readonly ? 'yes' : 'no'],
    ['Size limit', v.sizeLimit > 0 ? `${humanSize(v.sizeLimit)} (${v.sizeLimit} bytes)` : 'none'],
    ['Origin', v.origin ? `${v.origin.kind} of ${v.origin.name}` : '-'],
    ['Created', `${v.created.toISOString()} (${humanAge(v.created, now)})`],
  ];
  const labels = Object.entries(v.labels).sort(([a], [b]) => a.localeCompare(b));
  labels.forEach(([k, val], i) => pairs.push([i === 0 ? 'Labels' : '', `${k}=${val}`]));
  if (!labels.length) pairs.push(['Labels', '-']);
  const refs = Object.entries(v.refs);
  refs.forEach(([caller, n], i) => pairs.push([i === 0 ? 'Mounted by' : '', n > 1 ? `${caller} (×${n})` : caller]));
  if (!refs.length) pairs.push(['Mounted by', '-']);
  return keyValues(pairs);
}
