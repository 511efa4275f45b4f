/**
 * Compression by magic bytes, never by file name: gzip, zstd (both decompressed in place, see decompress.ts) or
 * an uncompressed tar. xz and bzip2 are named in the refusal.
 */
import { UnpackError } from './errors';

export type Compression = 'gzip' | 'zstd' | 'none';

export function detectCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  if (head.length >= 6 && head[0] === 0xfd && head[1] === 0x37 && head[2] === 0x7a && head[3] === 0x58 && head[4] === 0x5a && head[5] === 0) {
    throw new UnpackError('unsupported', 'xz-compressed layers are not supported (OCI layers are tar, tar+gzip or tar+zstd)');
  }
  if (head.length >= 3 && head[0] === 0x42 && head[1] === 0x5a && head[2] === 0x68) {
    throw new UnpackError('unsupported', 'bzip2-compressed layers are not supported (OCI layers are tar, tar+gzip or tar+zstd)');
  }
  return 'none';
}
