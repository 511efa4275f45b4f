/**
 * Which thin device belongs to which snapshot, in a small SQLite database of the driver's own
 * (`<root>/devmapper/devices.db`).
 *
 * Why not a table in metadata.db through store.migrate(): a driver is built from DriverOptions only (root and
 * config), and the daemon opens metadata.db with locking_mode=EXCLUSIVE, which is its one-daemon-per-root lock,
 * so a second connection cannot open it. The driver's rows are written in the same synchronous way, and the
 * order of steps keeps the two files consistent across a kill -9: a row is written *before* the pool is asked
 * for a thin id, and deleted only *after* the pool deleted it, so every device strata made in the pool has a
 * row here, and Cleanup (listOnDisk → remove) can always find and free it.
 */
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** 'view': a read-only snapshot, activated read-only and never committed. */
export type DeviceState = 'creating' | 'ready' | 'view' | 'committed';

export interface DeviceRow {
  snapId: number;
  thinId: number;
  /** Thin device size in bytes (what the table maps). */
  sizeBytes: number;
  state: DeviceState;
  /** The snapshot this device was snapshotted from (its figures are usage's baseline), or null. */
  parentId: number | null;
  /** For a device made by mkfs: the empty filesystem's mapped bytes and used inodes (usage's baseline). */
  baseMapped: number;
  baseInodes: number;
  /** For committed devices: mapped bytes and used inodes, measured at the first usage() that needs them. */
  mapped: number | null;
  inodes: number | null;
}

interface Raw {
  snap_id: number;
  thin_id: number;
  size_bytes: number;
  state: DeviceState;
  parent_id: number | null;
  base_mapped: number;
  base_inodes: number;
  mapped: number | null;
  inodes: number | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS devices (
  snap_id INTEGER PRIMARY KEY,
  thin_id INTEGER NOT NULL UNIQUE,
  size_bytes INTEGER NOT NULL,
  state TEXT NOT NULL,
  parent_id INTEGER,
  base_mapped INTEGER NOT NULL DEFAULT 0,
  base_inodes INTEGER NOT NULL DEFAULT 0,
  mapped INTEGER,
  inodes INTEGER
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

const toRow = (r: Raw): DeviceRow => ({
  snapId: r.snap_id,
  thinId: r.thin_id,
  sizeBytes: r.size_bytes,
  state: r.state,
  parentId: r.parent_id,
  baseMapped: r.base_mapped,
  baseInodes: r.base_inodes,
  mapped: r.mapped,
  inodes: r.inodes,
});

/** dm-thin device ids are 24 bits. */
export const MAX_THIN_ID = (1 << 24) - 1;

export class DeviceTable {
  private readonly db: Database.Database;

  constructor(file: string) {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // FULL: a row must be on disk before the pool hears of its thin id (see the header).
    this.db.pragma('synchronous = FULL');
    this.db.exec(SCHEMA);
  }

  get(snapId: number): DeviceRow | undefined {
    const r = this.db.prepare<[number], Raw>('SELECT * FROM devices WHERE snap_id = ?').get(snapId);
    return r ? toRow(r) : undefined;
  }

  all(): DeviceRow[] {
    return this.db.prepare<[], Raw>('SELECT * FROM devices ORDER BY snap_id').all().map(toRow);
  }

  /** Reserves a thin id above every id handed out before (ids are not reused, like snapshot ids). */
  insert(row: Omit<DeviceRow, 'thinId' | 'mapped' | 'inodes'>): DeviceRow {
    return this.db.transaction(() => {
      const next = this.nextThinId();
      this.db
        .prepare('INSERT INTO devices (snap_id, thin_id, size_bytes, state, parent_id, base_mapped, base_inodes) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(row.snapId, next, row.sizeBytes, row.state, row.parentId, row.baseMapped, row.baseInodes);
      return { ...row, thinId: next, mapped: null, inodes: null };
    })();
  }

  /** Moves a row to a fresh thin id (the pool said the id is taken: a shared pool with other users). */
  reassign(snapId: number): number {
    return this.db.transaction(() => {
      const next = this.nextThinId();
      this.db.prepare('UPDATE devices SET thin_id = ? WHERE snap_id = ?').run(next, snapId);
      return next;
    })();
  }

  private nextThinId(): number {
    const got = this.db.prepare<[], { value: string }>("SELECT value FROM meta WHERE name = 'next_thin_id'").get();
    const maxRow = this.db.prepare<[], { m: number | null }>('SELECT MAX(thin_id) AS m FROM devices').get();
    let next = Math.max(Number(got?.value ?? 1), (maxRow?.m ?? 0) + 1);
    if (next > MAX_THIN_ID) next = 1; // wrapped after 16M devices: the pool's EEXIST moves us past live ones
    this.db.prepare("INSERT INTO meta (name, value) VALUES ('next_thin_id', ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value").run(String(next + 1));
    return next;
  }

  setState(snapId: number, state: DeviceState): void {
    this.db.prepare('UPDATE devices SET state = ? WHERE snap_id = ?').run(state, snapId);
  }

  /** The baseline a fresh filesystem starts from (mkfs's own blocks and inodes are not the layer's). */
  setBase(snapId: number, mapped: number, inodes: number): void {
    this.db.prepare('UPDATE devices SET base_mapped = ?, base_inodes = ? WHERE snap_id = ?').run(mapped, inodes, snapId);
  }

  setCommitted(snapId: number, mapped: number, inodes: number): void {
    this.db.prepare("UPDATE devices SET state = 'committed', mapped = ?, inodes = ? WHERE snap_id = ?").run(mapped, inodes, snapId);
  }

  delete(snapId: number): void {
    this.db.prepare('DELETE FROM devices WHERE snap_id = ?').run(snapId);
  }

  close(): void {
    this.db.close();
  }
}

