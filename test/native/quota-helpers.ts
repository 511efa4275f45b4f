/**
 * Helpers shared by the project-quota tests. Writes happen in a child process running as nobody: ext4 (like
 * every filesystem using the generic VFS quota code) lets CAP_SYS_RESOURCE ignore hard limits, so a root
 * writer would never see EDQUOT there.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

export const NOBODY = 65534;

export interface WriteResult {
  /** Bytes written before the first error. */
  written: number;
  /** The error code that stopped the writes, if any (EDQUOT on ext4, ENOSPC on XFS). */
  code?: string;
}

const WRITER = `
const fs = require('node:fs');
const { errno } = require('node:os').constants;
// Node 20's libuv has no name for EDQUOT and reports 'UNKNOWN': name errors from their number instead.
const nameOf = (e) => Object.keys(errno).find((k) => errno[k] === -e.errno) || e.code;
const [file, total, append] = [process.argv[1], Number(process.argv[2]), process.argv[3] === 'append'];
const chunk = Buffer.alloc(1 << 20, 0xab);
let written = 0, code;
const fd = fs.openSync(file, append ? 'a' : 'w');
try {
  while (written < total) { written += fs.writeSync(fd, chunk, 0, Math.min(chunk.length, total - written)); fs.fsyncSync(fd); }
} catch (e) { code = nameOf(e); }
try { fs.closeSync(fd); } catch (e) { code = code || nameOf(e); }
process.stdout.write(JSON.stringify({ written, code }));
`;

/** Writes `bytes` to file as uid/gid nobody, 1 MiB at a time with fsync, stopping at the first error. */
export function writeAsNobody(file: string, bytes: number, append = false): WriteResult {
  const r = spawnSync(process.execPath, ['-e', WRITER, file, String(bytes), append ? 'append' : 'truncate'], {
    uid: NOBODY,
    gid: NOBODY,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`writer failed (${r.status ?? r.signal}): ${r.stderr}`);
  return JSON.parse(r.stdout) as WriteResult;
}

/** Makes dir writable by the unprivileged writer. */
export function giveToNobody(dir: string): void {
  fs.chownSync(dir, NOBODY, NOBODY);
}

/** Whether the kernel knows a filesystem type (the dm VM's kernel has no btrfs, for one). */
export function kernelHasFs(type: string): boolean {
  try {
    return fs
      .readFileSync('/proc/filesystems', 'utf8')
      .split('\n')
      .some((l) => l.split('\t').pop() === type);
  } catch {
    return false;
  }
}
