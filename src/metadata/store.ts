/**
 * The metadata store: snapshots (and, through migrate(), other modules' tables) in one SQLite database in WAL
 * mode. better-sqlite3 is synchronous, so every state change is one transaction that nothing can interleave
 * with, and a Stat is one indexed lookup.
 *
 * The database is opened with locking_mode=EXCLUSIVE: the process holds the file lock for as long as it runs
 * and the kernel drops it when the process dies, which makes it the "one daemon per root" lock as well.
 *
 * Because nothing else can write the database, the visible snapshot rows are also kept in memory (by key and by
 * id), updated after every write and rebuilt whenever a transaction fails: Stat, List and parent chains are
 * answered without SQLite or JSON parsing (containerd's clients Stat every snapshot they list).
 */
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StrataError, internal } from '../core/errors';
import type { Kind, Labels } from '../core/types';

export interface SnapshotRow {
  id: number;
  key: string;
  parentId: number | null;
  /** The parent's key ('' for none), joined in by every read so Stat stays one query. */
  parentKey: string;
  kind: Kind;
  created: Date;
  updated: Date;
  labels: Labels;
  sizeLimit: number | null;
  /** Usage of a committed layer, computed once (committed layers never change). */
  usageSize: number | null;
  usageInodes: number | null;
  usageMethod: string | null;
}

const KIND_TO_INT: Record<Kind, number> = { view: 1, active: 2, committed: 3 };
const INT_TO_KIND: Record<number, Kind> = { 1: 'view', 2: 'active', 3: 'committed' };

/** Rows being created (driver storage in progress) are invisible to readers and rolled back at startup. */
const STATE_CREATING = 0;
const STATE_READY = 1;

interface RawRow {
  id: number;
  key: string;
  parent_id: number | null;
  parent_key: string | null;
  kind: number;
  created_ms: number;
  updated_ms: number;
  labels: string;
  size_limit: number | null;
  usage_size: number | null;
  usage_inodes: number | null;
  usage_method: string | null;
}

const SNAPSHOT_SCHEMA = `
CREATE TABLE IF NOT EXISTS snapshots (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL UNIQUE,
  parent_id INTEGER REFERENCES snapshots(id),
  kind INTEGER NOT NULL,
  state INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  labels TEXT NOT NULL DEFAULT '{}',
  size_limit INTEGER,
  usage_size INTEGER,
  usage_inodes INTEGER,
  usage_method TEXT
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent_id);
CREATE TABLE IF NOT EXISTS reclaim (
  id INTEGER PRIMARY KEY,
  queued_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
`;

const SELECT_ROW = `SELECT s.id, s.key, s.parent_id, p.key AS parent_key, s.kind, s.created_ms, s.updated_ms, s.labels,
  s.size_limit, s.usage_size, s.usage_inodes, s.usage_method FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id`;

function toRow(r: RawRow): SnapshotRow {
  return {
    id: r.id,
    key: r.key,
    parentId: r.parent_id,
    parentKey: r.parent_key ?? '',
    kind: INT_TO_KIND[r.kind] ?? 'active',
    created: new Date(r.created_ms),
    updated: new Date(r.updated_ms),
    labels: JSON.parse(r.labels) as Labels,
    sizeLimit: r.size_limit,
    usageSize: r.usage_size,
    usageInodes: r.usage_inodes,
    usageMethod: r.usage_method,
  };
}

export interface NewSnapshot {
  key: string;
  parentId: number | null;
  kind: Exclude<Kind, 'committed'>;
  labels: Labels;
  sizeLimit: number | null;
}

export class MetadataStore {
  readonly db: Database.Database;
  private readonly stmts;
  /** Ready rows by key and by id (id order = creation order, which List keeps). Rows are frozen. */
  private byKey = new Map<string, SnapshotRow>();
  private byId = new Map<number, SnapshotRow>();
  private readonly pragmaFull;
  private readonly pragmaNormal;

  constructor(readonly file: string) {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    this.db = new Database(file);
    try {
      this.db.pragma('journal_mode = WAL');
      // NORMAL in WAL mode survives any process crash (kill -9); only a power loss can drop the newest
      // transactions. durably() syncs the ones whose loss would matter (commit, remove) — see there.
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('foreign_keys = ON');
      this.db.pragma('locking_mode = EXCLUSIVE');
      // Take the exclusive lock now rather than at the first write, so a second daemon fails at startup.
      this.db.exec('BEGIN EXCLUSIVE; COMMIT;');
    } catch (e) {
      this.db.close();
      if ((e as { code?: string }).code === 'SQLITE_BUSY') {
        throw new StrataError('FailedPrecondition', `another strata daemon is using ${path.dirname(file)} (its metadata database is locked)`);
      }
      throw internal(`cannot open metadata database ${file}`, e);
    }
    this.migrate('0001-snapshots', SNAPSHOT_SCHEMA);
    const db = this.db;
    this.stmts = {
      byId: db.prepare<[number], RawRow>(`${SELECT_ROW} WHERE s.id = ? AND s.state = ${STATE_READY}`),
      all: db.prepare<[], RawRow>(`${SELECT_ROW} WHERE s.state = ${STATE_READY} ORDER BY s.id`),
      keyTaken: db.prepare<[string], { id: number }>(`SELECT id FROM snapshots WHERE key = ?`),
      insert: db.prepare(
        `INSERT INTO snapshots (key, parent_id, kind, state, created_ms, updated_ms, labels, size_limit)
         VALUES (@key, @parentId, @kind, ${STATE_CREATING}, @now, @now, @labels, @sizeLimit)`,
      ),
      setReady: db.prepare<[number]>(`UPDATE snapshots SET state = ${STATE_READY} WHERE id = ?`),
      chain: db.prepare<[number], { id: number }>(
        `WITH RECURSIVE chain(id, parent_id, depth) AS (
           SELECT id, parent_id, 0 FROM snapshots WHERE id = ?
           UNION ALL SELECT s.id, s.parent_id, c.depth + 1 FROM snapshots s JOIN chain c ON s.id = c.parent_id)
         SELECT id FROM chain ORDER BY depth`,
      ),
      hasChildren: db.prepare<[number], { one: number }>(`SELECT 1 AS one FROM snapshots WHERE parent_id = ? LIMIT 1`),
      commit: db.prepare(
        `UPDATE snapshots SET key = @name, kind = ${KIND_TO_INT.committed}, labels = @labels, parent_id = @parentId,
         updated_ms = @now WHERE id = @id`,
      ),
      setLabels: db.prepare(`UPDATE snapshots SET labels = @labels, updated_ms = @now WHERE id = @id`),
      setUsage: db.prepare(`UPDATE snapshots SET usage_size = @size, usage_inodes = @inodes, usage_method = @method WHERE id = @id`),
      delete: db.prepare<[number]>(`DELETE FROM snapshots WHERE id = ?`),
      enqueue: db.prepare<[number, number]>(`INSERT OR IGNORE INTO reclaim (id, queued_ms) VALUES (?, ?)`),
      pending: db.prepare<[], { id: number }>(`SELECT id FROM reclaim ORDER BY queued_ms, id`),
      dequeue: db.prepare<[number]>(`DELETE FROM reclaim WHERE id = ?`),
      creating: db.prepare<[], { id: number }>(`SELECT id FROM snapshots WHERE state = ${STATE_CREATING}`),
      allIds: db.prepare<[], { id: number }>(`SELECT id FROM snapshots`),
      getMeta: db.prepare<[string], { value: string }>(`SELECT value FROM meta WHERE name = ?`),
      setMeta: db.prepare<[string, string]>(`INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value`),
    };
    this.pragmaFull = db.prepare('PRAGMA synchronous = FULL');
    this.pragmaNormal = db.prepare('PRAGMA synchronous = NORMAL');
    this.reloadCache();
  }

  /** Rebuilds the in-memory rows from the database (at open, and after a failed transaction). */
  private reloadCache(): void {
    this.byKey = new Map();
    this.byId = new Map();
    for (const r of this.stmts.all.iterate()) this.cacheRow(toRow(r));
  }

  private cacheRow(row: SnapshotRow): void {
    Object.freeze(row.labels);
    Object.freeze(row);
    const old = this.byId.get(row.id);
    if (old && old.key !== row.key) this.byKey.delete(old.key);
    this.byKey.set(row.key, row);
    this.byId.set(row.id, row);
  }

  /** Re-reads one row after a write to it. */
  private refresh(id: number): void {
    const r = this.stmts.byId.get(id);
    if (r) {
      this.cacheRow(toRow(r));
    } else {
      const old = this.byId.get(id);
      if (old) this.byKey.delete(old.key);
      this.byId.delete(id);
    }
  }

  /** Applies a named schema change once. Modules that persist state (volumes) call this with their own names. */
  migrate(name: string, sql: string): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_ms INTEGER NOT NULL)');
    const done = this.db.prepare('SELECT 1 FROM schema_migrations WHERE name = ?').get(name);
    if (done) return;
    this.db.transaction(() => {
      this.db.exec(sql);
      this.db.prepare('INSERT INTO schema_migrations (name, applied_ms) VALUES (?, ?)').run(name, Date.now());
    })();
  }

  transaction<T>(fn: () => T): T {
    try {
      return this.db.transaction(fn)();
    } catch (e) {
      this.reloadCache(); // the rollback undid writes the cache may have seen
      throw e;
    }
  }

  /**
   * A transaction that is on disk when this returns, even across a power loss. Used where losing it would let
   * metadata and storage disagree: a reverted Remove would bring back a snapshot whose bytes the reclaimer
   * already freed; a reverted Commit would turn a committed layer back into an active one. The sync also
   * covers every earlier NORMAL transaction (the WAL is one sequential file). Losing a "creating → ready"
   * flip is harmless: the row is rolled back at start and Cleanup frees its storage.
   */
  durably<T>(fn: () => T): T {
    this.pragmaFull.run();
    try {
      return this.transaction(fn);
    } finally {
      this.pragmaNormal.run();
    }
  }

  get(key: string): SnapshotRow | undefined {
    return this.byKey.get(key);
  }

  getById(id: number): SnapshotRow | undefined {
    return this.byId.get(id);
  }

  /** True when any row, including one being created, holds this key. */
  keyTaken(key: string): boolean {
    return this.stmts.keyTaken.get(key) !== undefined;
  }

  /** Every visible snapshot, oldest first. */
  all(): IterableIterator<SnapshotRow> {
    return this.byId.values();
  }

  /** The ids of the ancestors of id, nearest first (id itself excluded). */
  ancestors(id: number): number[] {
    const out: number[] = [];
    let row = this.byId.get(id);
    if (!row) return this.stmts.chain.all(id).slice(1).map((r) => r.id); // a row still being created
    while (row.parentId !== null) {
      out.push(row.parentId);
      const next = this.byId.get(row.parentId);
      if (!next) break;
      row = next;
    }
    return out;
  }

  hasChildren(id: number): boolean {
    return this.stmts.hasChildren.get(id) !== undefined;
  }

  /** Inserts a snapshot in the creating state; markReady() makes it visible once its storage exists. */
  insertCreating(s: NewSnapshot): number {
    const info = this.stmts.insert.run({
      key: s.key,
      parentId: s.parentId,
      kind: KIND_TO_INT[s.kind],
      now: Date.now(),
      labels: JSON.stringify(s.labels),
      sizeLimit: s.sizeLimit,
    });
    return Number(info.lastInsertRowid);
  }

  markReady(id: number): void {
    this.stmts.setReady.run(id);
    this.refresh(id);
  }

  commit(id: number, name: string, labels: Labels, parentId: number | null): void {
    this.durably(() => this.stmts.commit.run({ id, name, labels: JSON.stringify(labels), parentId, now: Date.now() }));
    this.refresh(id);
  }

  setLabels(id: number, labels: Labels): void {
    this.stmts.setLabels.run({ id, labels: JSON.stringify(labels), now: Date.now() });
    this.refresh(id);
  }

  setUsage(id: number, size: number, inodes: number, method: string): void {
    this.stmts.setUsage.run({ id, size, inodes, method });
    this.refresh(id);
  }

  /** Deletes the row and queues its storage for background reclaim, in one transaction. */
  deleteAndQueueReclaim(id: number): void {
    this.durably(() => {
      this.stmts.delete.run(id);
      this.stmts.enqueue.run(id, Date.now());
    });
    this.refresh(id);
  }

  pendingReclaims(): number[] {
    return this.stmts.pending.all().map((r) => r.id);
  }

  reclaimDone(id: number): void {
    this.stmts.dequeue.run(id);
  }

  /** Rows a crash left in the creating state: deleted and queued for reclaim. Returns their ids. */
  rollBackCreating(): number[] {
    const ids = this.stmts.creating.all().map((r) => r.id);
    for (const id of ids) this.deleteAndQueueReclaim(id);
    return ids;
  }

  /** Every id the metadata knows, in any state, plus those queued for reclaim. */
  knownIds(): Set<number> {
    const ids = new Set(this.stmts.allIds.all().map((r) => r.id));
    for (const id of this.pendingReclaims()) ids.add(id);
    return ids;
  }

  counts(): Record<Kind, number> {
    const out: Record<Kind, number> = { view: 0, active: 0, committed: 0 };
    for (const row of this.byId.values()) out[row.kind] += 1;
    return out;
  }

  getMeta(name: string): string | undefined {
    return this.stmts.getMeta.get(name)?.value;
  }

  setMeta(name: string, value: string): void {
    this.stmts.setMeta.run(name, value);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
