/**
 * The thin pool: reading its state from `dmsetup status`/`table`, sending it messages, and (for development and
 * tests) creating one on loopback data and metadata files under strata's root.
 *
 * thin-pool status (Documentation/admin-guide/device-mapper/thin-provisioning.rst):
 *   <transaction id> <used meta>/<total meta> <used data>/<total data> <held root> ro|rw|out_of_data_space
 *   [no_]discard_passdown error|queue_if_no_space needs_check|- <metadata low watermark>
 * or "Fail". Metadata blocks are always 4 KiB; data blocks are the table's block size in 512-byte sectors.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { failedPrecondition, internal, resourceExhausted } from '../../src/core/errors';
import { dmsetup, isDmError, run } from './exec';

export const SECTOR = 512;
const META_BLOCK = 4096;

export interface PoolStatus {
  mode: 'rw' | 'ro' | 'out_of_data_space' | 'fail';
  metaUsed: number;
  metaTotal: number;
  dataUsed: number;
  dataTotal: number;
  needsCheck: boolean;
  errorIfNoSpace: boolean;
}

export function parsePoolStatus(line: string): PoolStatus {
  const f = line.trim().split(/\s+/);
  if (f[2] !== 'thin-pool') throw failedPrecondition(`not a thin-pool device (status: ${line.trim()})`);
  if (f[3] === 'Fail') return { mode: 'fail', metaUsed: 0, metaTotal: 0, dataUsed: 0, dataTotal: 0, needsCheck: true, errorIfNoSpace: false };
  const [mu, mt] = (f[4] ?? '').split('/').map(Number);
  const [du, dt] = (f[5] ?? '').split('/').map(Number);
  const mode = f[7] === 'ro' || f[7] === 'out_of_data_space' ? f[7] : 'rw';
  return {
    mode,
    metaUsed: mu ?? 0,
    metaTotal: mt ?? 0,
    dataUsed: du ?? 0,
    dataTotal: dt ?? 0,
    needsCheck: f[10] === 'needs_check',
    errorIfNoSpace: f[9] === 'error_if_no_space',
  };
}

export interface PoolTable {
  sectors: number;
  metadataDev: string;
  dataDev: string;
  blockSectors: number;
}

export function parsePoolTable(line: string): PoolTable {
  const f = line.trim().split(/\s+/);
  if (f[2] !== 'thin-pool') throw failedPrecondition(`not a thin-pool device (table: ${line.trim()})`);
  return { sectors: Number(f[1]), metadataDev: f[3] ?? '', dataDev: f[4] ?? '', blockSectors: Number(f[5]) };
}

export class Pool {
  /** Data block size in bytes, read from the table once (it never changes for a pool). */
  blockBytes = 0;
  /** Until when the last status showed plenty of room (assertWritable skips the check before then). */
  private roomyUntil = 0;

  constructor(readonly name: string) {}

  get devPath(): string {
    return `/dev/mapper/${this.name}`;
  }

  async exists(): Promise<boolean> {
    try {
      await dmsetup(['info', '-c', '--noheadings', '-o', 'name', this.name]);
      return true;
    } catch (e) {
      if (isDmError(e, /not exist|No such device/)) return false;
      throw e;
    }
  }

  async table(): Promise<PoolTable> {
    return parsePoolTable(await dmsetup(['table', this.name]));
  }

  async status(): Promise<PoolStatus> {
    return parsePoolStatus(await dmsetup(['status', this.name]));
  }

  /** Loads the block size; fails clearly when the name is not a thin pool. */
  async open(): Promise<void> {
    const t = await this.table();
    this.blockBytes = t.blockSectors * SECTOR;
  }

  /**
   * Refuses work the pool cannot take, with the figures: an out-of-space pool queues or fails writes, and a pool
   * out of metadata turns read-only, so creating a device there would fail half-way or hang a container.
   */
  async assertWritable(force = false): Promise<void> {
    // A pool with room to spare was checked a moment ago: skip the dmsetup run (~0.4 s under emulation). Near
    // full, every call checks.
    if (!force && Date.now() < this.roomyUntil) return;
    const s = await this.status();
    const roomy = s.mode === 'rw' && !s.needsCheck && s.dataUsed < s.dataTotal * 0.8 && s.metaUsed < s.metaTotal * 0.8;
    this.roomyUntil = roomy ? Date.now() + 5_000 : 0;
    if (s.mode === 'fail') throw failedPrecondition(`thin pool ${this.name} has failed (dmsetup status says Fail): check the kernel log and run thin_check`);
    if (s.needsCheck) throw failedPrecondition(`thin pool ${this.name} needs a check: deactivate it and run thin_check/thin_repair on its metadata`);
    if (s.mode === 'ro' || s.metaUsed >= s.metaTotal) {
      throw resourceExhausted(`thin pool ${this.name} is out of metadata space (${s.metaUsed}/${s.metaTotal} 4 KiB blocks used; the pool is ${s.mode}): grow the metadata device`);
    }
    if (s.mode === 'out_of_data_space' || s.dataUsed >= s.dataTotal) {
      throw resourceExhausted(`thin pool ${this.name} is out of data space (${s.dataUsed}/${s.dataTotal} blocks of ${this.blockBytes} bytes used): remove snapshots or grow the data device`);
    }
  }

  /** A pool message; a failure is explained with the pool's space figures when space is the cause. */
  async message(text: string): Promise<void> {
    try {
      await dmsetup(['message', this.name, '0', text]);
    } catch (e) {
      if (isDmError(e, /No space left|Operation not permitted|Read-only|Input\/output error/)) {
        this.roomyUntil = 0;
        await this.assertWritable();
      }
      throw e;
    }
  }

  /** Figures for `snapctl info`. */
  async describe(): Promise<Record<string, string>> {
    const s = await this.status();
    return {
      pool: this.name,
      pool_mode: s.mode,
      pool_data_used_bytes: String(s.dataUsed * this.blockBytes),
      pool_data_total_bytes: String(s.dataTotal * this.blockBytes),
      pool_metadata_used_bytes: String(s.metaUsed * META_BLOCK),
      pool_metadata_total_bytes: String(s.metaTotal * META_BLOCK),
      pool_no_space_policy: s.errorIfNoSpace ? 'error_if_no_space' : 'queue_if_no_space',
    };
  }
}

// --- a pool strata creates on loopback files (development and tests) ------------------------------------------

export interface OwnedPoolSpec {
  /** Directory holding the `data` and `metadata` files. */
  dir: string;
  dataBytes: number;
  metadataBytes: number;
  /** Data block size in bytes (a multiple of 64 KiB). */
  blockBytes: number;
}

/** The loop device already backed by file, or a new one. Reattaching after a restart reuses the kernel's. */
async function loopFor(file: string): Promise<string> {
  const out = (await run('losetup', ['-j', file, '-n', '-O', 'NAME'])).trim();
  const existing = out.split('\n')[0]?.trim();
  if (existing) return existing;
  return (await run('losetup', ['--find', '--show', file])).trim();
}

function ensureFile(file: string, bytes: number): boolean {
  if (fs.existsSync(file)) return false;
  const fd = fs.openSync(file, 'wx', 0o600);
  try {
    // Sparse: a 10 GiB pool costs nothing until thin devices write. Zeroed metadata means "format me".
    fs.ftruncateSync(fd, bytes);
  } finally {
    fs.closeSync(fd);
  }
  return true;
}

/**
 * Brings up the pool on its loopback files: reuses the dm device when it is there (the daemon restarted), else
 * attaches the files and loads a thin-pool table. error_if_no_space: a full pool fails writes at once instead of
 * queueing them for 60 s, so a container sees ENOSPC and strata can say why.
 */
export async function ensureOwnedPool(pool: Pool, spec: OwnedPoolSpec): Promise<void> {
  if (await pool.exists()) return;
  fs.mkdirSync(spec.dir, { recursive: true, mode: 0o700 });
  const dataFile = path.join(spec.dir, 'data');
  const metaFile = path.join(spec.dir, 'metadata');
  if (ensureFile(metaFile, spec.metadataBytes)) {
    // A new metadata file needs a new data file: old data blocks would be unreachable garbage.
    fs.rmSync(dataFile, { force: true });
  }
  ensureFile(dataFile, spec.dataBytes);
  const dataSectors = Math.floor(fs.statSync(dataFile).size / spec.blockBytes) * (spec.blockBytes / SECTOR);
  if (dataSectors <= 0) throw internal(`devmapper: ${dataFile} is smaller than one data block`);
  const metaDev = await loopFor(metaFile);
  const dataDev = await loopFor(dataFile);
  // Low water mark: the kernel logs an event when free data blocks drop below it (about 1% here).
  const lowWater = Math.max(1, Math.floor(dataSectors / (spec.blockBytes / SECTOR) / 100));
  const table = `0 ${dataSectors} thin-pool ${metaDev} ${dataDev} ${spec.blockBytes / SECTOR} ${lowWater} 1 error_if_no_space`;
  await dmsetup(['create', pool.name, '--table', table]);
}

/** Tears an owned pool down (tests and `devmapper` teardown): every thin device on it first, then the loops. */
export async function destroyOwnedPool(pool: Pool, dir: string, thinPrefix: string): Promise<void> {
  const names = await listDmNames();
  for (const n of names) if (n.startsWith(thinPrefix) && n !== pool.name) await dmsetup(['remove', '--retry', n]);
  if (names.includes(pool.name)) await dmsetup(['remove', '--retry', pool.name]);
  for (const f of ['data', 'metadata']) {
    const file = path.join(dir, f);
    if (!fs.existsSync(file)) continue;
    const loops = (await run('losetup', ['-j', file, '-n', '-O', 'NAME'])).split('\n').map((s) => s.trim()).filter(Boolean);
    for (const l of loops) await run('losetup', ['-d', l]);
  }
}

/** Names of every dm device (one ioctl). */
export async function listDmNames(): Promise<string[]> {
  const out = await dmsetup(['ls']);
  if (/^No devices found/m.test(out)) return [];
  return out
    .split('\n')
    .map((l) => l.split(/\s+/)[0] ?? '')
    .filter(Boolean);
}
