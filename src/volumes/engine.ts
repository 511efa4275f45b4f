/**
 * The volume engine: names, state and mount references in the metadata store, bytes in a backend. Every front end
 * (gRPC, the Docker plugin, tests) goes through it, so they share one set of rules:
 * - a name is claimed by a synchronous insert before any backend work, so a double create fails cleanly;
 * - a volume is removed only when no caller holds a mount reference (unless forced), and references are rows in
 *   SQLite, so a restart never makes a volume in use look free;
 * - paths are `<root>/volumes/<id>`: a numeric id, never the name, reaches the filesystem.
 */
import * as path from 'node:path';
import { alreadyExists, failedPrecondition, internal, invalidArgument, notFound, toStrataError } from '../core/errors';
import type { Logger } from '../core/log';
import type { Labels } from '../core/types';
import type { StoredVolume, VolumeBackend } from './backends/backend';
import { validateName } from './names';
import { type MigratingStore, type VolumeRow, VolumeStore } from './store';
import type { CreateVolumeRequest, Volume, VolumeUsage } from './types';

export interface VolumeEngineOptions {
  /** strata's root; volumes live in `<root>/volumes/`. */
  root: string;
  store: MigratingStore;
  backend: VolumeBackend;
  log: Logger;
}

export interface RemoveOptions {
  /** Remove even while callers hold mount references (their mounts keep the old inode alive). */
  force?: boolean;
}

const MAX_LABELS_BYTES = 64 * 1024;
const MAX_CALLER_LENGTH = 256;

function checkLabels(labels: Labels | undefined): Labels {
  const out: Labels = {};
  if (!labels) return out;
  for (const [k, v] of Object.entries(labels)) {
    if (!k || typeof v !== 'string') throw invalidArgument(`label "${k}" must have a non-empty key and a string value`);
    out[k] = v;
  }
  if (JSON.stringify(out).length > MAX_LABELS_BYTES) throw invalidArgument(`labels exceed ${MAX_LABELS_BYTES} bytes`);
  return out;
}

function checkCaller(caller: unknown): string {
  if (typeof caller !== 'string' || caller.length === 0) throw invalidArgument('a mount needs a caller ID');
  if (caller.length > MAX_CALLER_LENGTH) throw invalidArgument(`caller ID is longer than ${MAX_CALLER_LENGTH} characters`);
  return caller;
}

export class VolumeEngine {
  readonly volumesRoot: string;
  private readonly store: VolumeStore;
  private readonly backend: VolumeBackend;
  private readonly log: Logger;

  private constructor(opts: VolumeEngineOptions) {
    this.volumesRoot = path.resolve(opts.root, 'volumes');
    this.store = new VolumeStore(opts.store);
    this.backend = opts.backend;
    this.log = opts.log.child({ component: 'volumes', backend: opts.backend.name });
  }

  /** Prepares the backend and finishes or undoes what a crash interrupted; then the engine is ready. */
  static async open(opts: VolumeEngineOptions): Promise<VolumeEngine> {
    const engine = new VolumeEngine(opts);
    await engine.backend.init();
    await engine.recover();
    return engine;
  }

  get backendName(): string {
    return this.backend.name;
  }

  backendStatus(): Record<string, string> {
    return this.backend.status();
  }

  private async recover(): Promise<void> {
    for (const row of this.store.all()) {
      const vol = this.stored(row);
      try {
        if (row.state === 'ready') {
          await this.backend.restore(vol);
          continue;
        }
        // A create that did not finish never handed its path out; a remove that did not finish was refused to
        // no one. Either way the storage goes and the name is free again.
        this.log.warn('finishing interrupted volume operation', { volume: row.name, state: row.state });
        await this.backend.remove(vol);
        this.store.delete(row.id);
      } catch (e) {
        // One broken volume must not keep the daemon (and every other volume) down.
        this.log.error('volume recovery failed', { volume: row.name, state: row.state, err: e as Error });
      }
    }
  }

  /** `<root>/volumes/<id>`, checked to be inside the volumes root whatever the id. */
  private pathOf(id: number): string {
    if (!Number.isSafeInteger(id) || id <= 0) throw internal(`bad volume id ${id}`);
    const p = path.join(this.volumesRoot, String(id));
    if (path.dirname(p) !== this.volumesRoot) throw internal(`volume path ${p} escapes ${this.volumesRoot}`);
    return p;
  }

  private stored(row: VolumeRow): StoredVolume {
    return { id: row.id, path: this.pathOf(row.id), sizeLimit: row.sizeLimit, readonly: row.readonly, data: row.backendData };
  }

  private toVolume(row: VolumeRow, refs?: Record<string, number>): Volume {
    return {
      id: row.id,
      name: row.name,
      backend: row.backend,
      path: this.pathOf(row.id),
      readonly: row.readonly,
      sizeLimit: row.sizeLimit,
      labels: row.labels,
      options: row.options,
      origin: row.originName && row.originKind ? { kind: row.originKind, name: row.originName } : undefined,
      created: row.created,
      state: row.state,
      refs: refs ?? this.store.refs(row.id),
    };
  }

  /** The row of a volume that is ready for use; NotFound otherwise (a half-created volume does not exist yet). */
  private ready(name: string): VolumeRow {
    validateName(name);
    const row = this.store.get(name);
    if (!row) throw notFound(`volume "${name}" not found`);
    if (row.state === 'creating') throw failedPrecondition(`volume "${name}" is still being created`);
    if (row.state === 'removing') throw failedPrecondition(`volume "${name}" is being removed`);
    return row;
  }

  async create(req: CreateVolumeRequest): Promise<Volume> {
    const name = validateName(req.name);
    const labels = checkLabels(req.labels);
    const options = { ...(req.options ?? {}) };
    let sizeLimit = req.sizeLimit ?? 0;
    if (!Number.isSafeInteger(sizeLimit) || sizeLimit < 0) throw invalidArgument('size must be a non-negative integer');
    if (req.snapshotOf && req.cloneOf) throw invalidArgument('a volume is either a snapshot of one volume or a clone of one, not both');
    const originName = req.snapshotOf || req.cloneOf || '';
    const originKind = req.snapshotOf ? 'snapshot' : req.cloneOf ? 'clone' : null;
    const origin = originName ? this.ready(originName) : undefined;
    if (originKind === 'snapshot' && sizeLimit > 0) throw invalidArgument('a snapshot is read-only and takes no size');
    // A clone keeps its origin's limit unless it asks for another.
    if (originKind === 'clone' && sizeLimit === 0 && origin) sizeLimit = origin.sizeLimit;
    if (sizeLimit > 0) {
      const why = this.backend.sizeLimitUnsupported();
      if (why) throw failedPrecondition(`volume "${name}": size limits are not available here: ${why}`);
    }
    if (this.store.get(name)) throw alreadyExists(`volume "${name}" already exists`);

    let id: number;
    try {
      id = this.store.insert({
        name,
        backend: this.backend.name,
        readonly: originKind === 'snapshot',
        sizeLimit,
        labels,
        options,
        originId: origin?.id ?? null,
        originName: origin?.name ?? null,
        originKind,
      });
    } catch (e) {
      // Two creates racing past the check above: the UNIQUE constraint decides.
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') throw alreadyExists(`volume "${name}" already exists`);
      throw e;
    }
    const target = { id, path: this.pathOf(id), sizeLimit };
    try {
      const data = origin
        ? await this.backend.copy(this.stored(origin), target, originKind === 'snapshot')
        : await this.backend.create(target);
      this.store.setReady(id, data);
    } catch (e) {
      this.log.warn('volume create failed; undoing', { volume: name, err: e as Error });
      await this.backend.remove({ ...target, readonly: false, data: {} }).catch((e2: Error) =>
        this.log.error('undoing a failed volume create failed', { volume: name, err: e2 }),
      );
      this.store.delete(id);
      throw toStrataError(e, `create volume "${name}"`);
    }
    this.log.info('volume created', { volume: name, id, sizeLimit, origin: originName || undefined });
    return this.inspect(name);
  }

  snapshot(source: string, name: string, labels?: Labels): Promise<Volume> {
    return this.create({ name, snapshotOf: source, labels, options: { 'snapshot-of': source } });
  }

  clone(source: string, name: string, sizeLimit?: number, labels?: Labels): Promise<Volume> {
    return this.create({ name, cloneOf: source, sizeLimit, labels, options: { 'clone-of': source } });
  }

  /** Every volume (ready or not), optionally those carrying all the given labels. */
  list(labelFilter: Labels = {}): Volume[] {
    const refs = this.store.allRefs();
    return this.store
      .all()
      .filter((r) => Object.entries(labelFilter).every(([k, v]) => r.labels[k] === v))
      .map((r) => this.toVolume(r, refs.get(r.id) ?? {}));
  }

  inspect(name: string): Volume {
    validateName(name);
    const row = this.store.get(name);
    if (!row) throw notFound(`volume "${name}" not found`);
    return this.toVolume(row);
  }

  path(name: string): string {
    return this.pathOf(this.ready(name).id);
  }

  async usage(name: string): Promise<VolumeUsage> {
    const row = this.ready(name);
    try {
      return await this.backend.usage(this.stored(row));
    } catch (e) {
      throw toStrataError(e, `usage of volume "${name}"`);
    }
  }

  /** Records that caller mounts the volume and returns its path; the reference is persisted before the path is. */
  mount(name: string, caller: string): string {
    const row = this.ready(name);
    this.store.addRef(row.id, checkCaller(caller));
    this.log.debug('volume mounted', { volume: name, caller });
    return this.pathOf(row.id);
  }

  /** Drops one reference of caller. Releasing a reference never held is not an error (a retried Unmount). */
  unmount(name: string, caller: string): void {
    validateName(name);
    const row = this.store.get(name);
    if (!row) throw notFound(`volume "${name}" not found`);
    if (!this.store.releaseRef(row.id, checkCaller(caller))) {
      this.log.warn('unmount by a caller holding no reference', { volume: name, caller });
    }
  }

  async remove(name: string, opts: RemoveOptions = {}): Promise<void> {
    const row = this.ready(name);
    const refs = this.store.refs(row.id);
    const callers = Object.keys(refs);
    if (callers.length > 0 && !opts.force) {
      throw failedPrecondition(`volume "${name}" is in use (mounted by ${callers.length} caller(s): ${callers.slice(0, 5).join(', ')})`);
    }
    if (this.backend.copiesDependOnOrigin) {
      const deps = this.store.dependents(row.id);
      if (deps.length > 0) {
        throw failedPrecondition(`volume "${name}" has snapshots or clones that depend on it: ${deps.join(', ')}; remove them first`);
      }
    }
    // Marked first: a crash from here on finishes the removal at startup instead of resurrecting the volume.
    this.store.setState(row.id, 'removing');
    try {
      await this.backend.remove(this.stored(row));
    } catch (e) {
      // Storage is intact or partly gone: keep the name reserved so nothing reuses it, and say why.
      this.log.error('volume remove failed', { volume: name, err: e as Error });
      this.store.setState(row.id, 'ready');
      throw toStrataError(e, `remove volume "${name}"`);
    }
    this.store.delete(row.id);
    if (callers.length) this.log.warn('volume removed while in use (forced)', { volume: name, callers });
    else this.log.info('volume removed', { volume: name });
  }
}
