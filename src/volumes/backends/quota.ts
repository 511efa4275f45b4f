/** Project quota support for directory volumes (placeholder until src/quota lands). */
import type { DirQuota } from './dir';

export async function detectDirQuota(dir: string): Promise<DirQuota | string> {
  return `project quota support is not built in yet (${dir})`;
}
