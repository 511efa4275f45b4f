/** Label rules containerd enforces on snapshots. */
import { invalidArgument } from './errors';
import type { Labels } from './types';
import { LABEL_MAX_SIZE } from './types';

/** containerd's limit on one label: key and value together. */
export const MAX_LABEL_BYTES = 4096;

export function validateLabels(labels: Labels): void {
  for (const [k, v] of Object.entries(labels)) {
    if (k === '') throw invalidArgument('label key must not be empty');
    const size = Buffer.byteLength(k) + Buffer.byteLength(v);
    if (size > MAX_LABEL_BYTES) {
      throw invalidArgument(`label key and value length (${size} bytes) greater than maximum size (${MAX_LABEL_BYTES} bytes): ${k.slice(0, 64)}`);
    }
  }
}

/** The size limit a snapshot asks for through containerd.io/snapshot/max-size, in bytes. */
export function sizeLimitFromLabels(labels: Labels): number | null {
  const raw = labels[LABEL_MAX_SIZE];
  if (raw === undefined || raw === '') return null;
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw)) || Number(raw) <= 0) {
    throw invalidArgument(`${LABEL_MAX_SIZE} must be a positive number of bytes, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}
