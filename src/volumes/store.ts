/**
 * The volume tables, added to the daemon's metadata database through its named migrations. Every state change is
 * one synchronous better-sqlite3 statement or transaction, so a crash leaves either the old or the new row; rows
 * still `creating` or `removing` at startup are work a crash interrupted and the engine finishes or undoes it.
 */
import type Database from 'better-sqlite3';
import type { Labels } from '../core/types';
import type { BackendName, VolumeOrigin } from './types';

/** What the engine needs of the metadata store (src/metadata/store.ts's MetadataStore satisfies it). */
export interface MigratingStore {
  readonly db: Database.Database;
  migrate(name: string, sql: string): void;
}

export type VolumeState = 'creating' | 'ready' | 'removing';

/** Backend-owned facts about one volume (a project id, a dataset name), persisted as JSON. */
export type BackendData = Record<string, string | number | boolean>;

export interface VolumeRow {
  id: number;
  name: string;
  backend: BackendName;
  state: VolumeState;
  readonly: boolean;
  sizeLimit: number;
  labels: Labels;
  options: Record<string, string>;
  originId: number | null;
  originName: string | null;
  originKind: VolumeOrigin | null;
  backendData: BackendData;
  created: Date;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS volumes (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  backend TEXT NOT NULL,
  state TEXT NOT NULL,
  readonly INTEGER NOT NULL DEFAULT 0,
  size_limit INTEGER NOT NULL DEFAULT 0,
  labels TEXT NOT NULL DEFAULT '{}',
  options TEXT NOT NULL DEFAULT '{}',
  origin_id INTEGER,
  origin_name TEXT,
  origin_kind TEXT,
  backend_data TEXT NOT NULL DEFAULT '{}',
  created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS volumes_origin ON volumes(origin_id);
CREATE TABLE IF NOT EXISTS volume_refs (
  volume_id INTEGER NOT NULL REFERENCES volumes(id) ON DELETE CASCADE,
  caller TEXT NOT NULL,
  count INTEGER NOT NULL,
  since_ms INTEGER NOT NULL,
  PRIMARY KEY (volume_id, caller)
);
`;

interface RawRow {
  id: number;
  name: string;
  backend: string;
  state: string;
  readonly: number;
  size_limit: number;
  labels: string;
  options: string;
  origin_id: number | null;
  origin_name: string | null;
  origin_kind: string | null;
  backend_data: string;
  created_ms: number;
}

function toRow(r: RawRow): VolumeRow {
  return {
    id: r.id,
    name: r.name,
    backend: r.backend as BackendName,
    state: r.state as VolumeState,
    readonly: r.readonly !== 0,
    sizeLimit: r.size_limit,
    labels: JSON.parse(r.labels) as Labels,
    options: JSON.parse(r.options) as Record<string, string>,
    originId: r.origin_id,
    originName: r.origin_name,
    originKind: r.origin_kind as VolumeOrigin | null,
    backendData: JSON.parse(r.backend_data) as BackendData,
    created: new Date(r.created_ms),
  };
}

export interface NewVolumeRow {
  name: string;
  backend: BackendName;
  readonly: boolean;
  sizeLimit: number;
  labels: Labels;
  options: Record<string, string>;
  originId: number | null;
  originName: string | null;
  originKind: VolumeOrigin | null;
}

export class VolumeStore {
  private readonly db: Database.Database;
  private readonly s;

  constructor(store: MigratingStore) {
    store.migrate('volumes-0001', SCHEMA);
    this.db = store.db;
    const db = this.db;
    this.s = {
      byName: db.prepare<[string], RawRow>(`SELECT * FROM volumes WHERE name = ?`),
      byId: db.prepare<[number], RawRow>(`SELECT * FROM volumes WHERE id = ?`),
      all: db.prepare<[], RawRow>(`SELECT * FROM volumes ORDER BY id`),
      insert: db.prepare(
        `INSERT INTO volumes (name, backend, state, readonly, size_limit, labels, options, origin_id, origin_name,
           origin_kind, created_ms)
         VALUES (@name, @backend, 'creating', @readonly, @sizeLimit, @labels, @options, @originId, @originName,
           @originKind, @now)`,
      ),
      setReady: db.prepare(`UPDATE volumes SET state = 'ready', backend_data = @data WHERE id = @id`),
      setState: db.prepare(`UPDATE volumes SET state = @state WHERE id = @id`),
      setBackendData: db.prepare(`UPDATE volumes SET backend_data = @data WHERE id = @id`),
      delete: db.prepare<[number]>(`DELETE FROM volumes WHERE id = ?`),
      dependents: db.prepare<[number], { name: string }>(`SELECT name FROM volumes WHERE origin_id = ? ORDER BY id`),
      refs: db.prepare<[number], { caller: string; count: number }>(
        `SELECT caller, count FROM volume_refs WHERE volume_id = ? ORDER BY since_ms, caller`,
      ),
      allRefs: db.prepare<[], { volume_id: number; caller: string; count: number }>(
        `SELECT volume_id, caller, count FROM volume_refs ORDER BY since_ms, caller`,
      ),
      addRef: db.prepare(
        `INSERT INTO volume_refs (volume_id, caller, count, since_ms) VALUES (@id, @caller, 1, @now)
         ON CONFLICT (volume_id, caller) DO UPDATE SET count = count + 1`,
      ),
      getRef: db.prepare<[number, string], { count: number }>(`SELECT count FROM volume_refs WHERE volume_id = ? AND caller = ?`),
      decRef: db.prepare<[number, string]>(`UPDATE volume_refs SET count = count - 1 WHERE volume_id = ? AND caller = ?`),
      dropRef: db.prepare<[number, string]>(`DELETE FROM volume_refs WHERE volume_id = ? AND caller = ?`),
      dropRefs: db.prepare<[number]>(`DELETE FROM volume_refs WHERE volume_id = ?`),
    };
  }

  get(name: string): VolumeRow | undefined {
    const r = this.s.byName.get(name);
    return r ? toRow(r) : undefined;
  }

  getById(id: number): VolumeRow | undefined {
    const r = this.s.byId.get(id);
    return r ? toRow(r) : undefined;
  }

  all(): VolumeRow[] {
    return this.s.all.all().map(toRow);
  }

  /** Inserts a row in state `creating`; the UNIQUE name makes a concurrent double create fail here. */
  insert(v: NewVolumeRow): number {
    const info = this.s.insert.run({
      ...v,
      readonly: v.readonly ? 1 : 0,
      labels: JSON.stringify(v.labels),
      options: JSON.stringify(v.options),
      now: Date.now(),
    });
    return Number(info.lastInsertRowid);
  }

  setReady(id: number, data: BackendData): void {
    this.s.setReady.run({ id, data: JSON.stringify(data) });
  }

  setState(id: number, state: VolumeState): void {
    this.s.setState.run({ id, state });
  }

  setBackendData(id: number, data: BackendData): void {
    this.s.setBackendData.run({ id, data: JSON.stringify(data) });
  }

  delete(id: number): void {
    this.db.transaction(() => {
      this.s.dropRefs.run(id);
      this.s.delete.run(id);
    })();
  }

  /** Volumes made from this one (snapshots, clones), for backends whose copies depend on their origin. */
  dependents(id: number): string[] {
    return this.s.dependents.all(id).map((r) => r.name);
  }

  refs(id: number): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.s.refs.all(id)) out[r.caller] = r.count;
    return out;
  }

  allRefs(): Map<number, Record<string, number>> {
    const out = new Map<number, Record<string, number>>();
    for (const r of this.s.allRefs.all()) {
      const m = out.get(r.volume_id) ?? {};
      m[r.caller] = r.count;
      out.set(r.volume_id, m);
    }
    return out;
  }

  addRef(id: number, caller: string): void {
    this.s.addRef.run({ id, caller, now: Date.now() });
  }

  /** Drops one reference of caller; returns false when caller held none. */
  releaseRef(id: number, caller: string): boolean {
    return this.db.transaction(() => {
      const r = this.s.getRef.get(id, caller);
      if (!r) return false;
      if (r.count > 1) this.s.decRef.run(id, caller);
      else this.s.dropRef.run(id, caller);
      return true;
    })();
  }
}
