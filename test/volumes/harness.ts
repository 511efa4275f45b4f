/**
 * One suite every volume backend runs (dir on a plain root, dir with project quota on XFS, btrfs subvolumes, ZFS
 * datasets): the engine over a real metadata store and real storage, reopened to check persistence.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isStrataError, type ErrorCode } from '../../src/core/errors';
import { silentLogger } from '../../src/core/log';
import { MetadataStore } from '../../src/metadata/store';
import type { VolumeBackend } from '../../src/volumes/backends/backend';
import { VolumeEngine } from '../../src/volumes/engine';

export const MiB = 1024 * 1024;

export interface BackendSetup {
  /** strata's root for this run (on the backend's filesystem). */
  root: string;
  backend(): VolumeBackend;
  /** Whether this setup can enforce size limits (the quota tests run only then). */
  limits: boolean;
  cleanup(): Promise<void>;
}

export async function expectCode(p: Promise<unknown> | (() => unknown), code: ErrorCode, re?: RegExp): Promise<void> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    assert.ok(isStrataError(e, code), `expected ${code}, got ${(e as Error).name}: ${(e as Error).message}`);
    if (re) assert.match((e as Error).message, re);
    return;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}

/** Writes 1 MiB chunks (fsync'd, so delayed allocation cannot hide the limit) until an error or maxBytes. */
/**
 * Writes up to maxBytes into file, 1 MiB at a time with O_SYNC, as a container would: without CAP_SYS_RESOURCE.
 * ext4 lets that capability exceed project quotas (XFS, btrfs qgroups and ZFS do not), so a root test process
 * writing directly would prove nothing there. Returns what was written and the error that stopped it.
 */
export function fill(file: string, maxBytes: number): { written: number; error?: NodeJS.ErrnoException } {
  const r = spawnSync(
    'setpriv',
    ['--bounding-set=-sys_resource', '--inh-caps=-sys_resource', '--', 'dd', 'if=/dev/zero', `of=${file}`, 'bs=1M', `count=${Math.ceil(maxBytes / MiB)}`, 'oflag=sync', 'status=none'],
    { encoding: 'utf8' },
  );
  const written = fs.existsSync(file) ? fs.statSync(file).size : 0;
  if (r.error) throw r.error;
  if (r.status === 0) return { written };
  const msg = (r.stderr || '').trim();
  const code = /quota/i.test(msg) ? 'EDQUOT' : /no space/i.test(msg) ? 'ENOSPC' : /read-only/i.test(msg) ? 'EROFS' : 'EIO';
  return { written, error: Object.assign(new Error(msg || `dd exited ${r.status}`), { code }) as NodeJS.ErrnoException };
}

/** EDQUOT or ENOSPC; Node 20's libuv has no name for EDQUOT (122) and reports it as UNKNOWN. */
export function isQuotaError(e: NodeJS.ErrnoException): boolean {
  return e.code === 'EDQUOT' || e.code === 'ENOSPC' || e.errno === -122;
}

export function volumeSuite(title: string, setup: () => Promise<BackendSetup | string>): void {
  describe(title, () => {
    let s: BackendSetup | undefined;
    let skip: string | undefined;
    let store: MetadataStore | undefined;
    let engine: VolumeEngine;

    const open = async (): Promise<void> => {
      store = new MetadataStore(path.join(s!.root, 'metadata.db'));
      engine = await VolumeEngine.open({ root: s!.root, store, backend: s!.backend(), log: silentLogger });
    };

    before(async () => {
      const r = await setup();
      if (typeof r === 'string') skip = r;
      else {
        s = r;
        await open();
      }
    });
    after(async () => {
      if (engine && s) {
        // Forced removal of whatever a failed assertion left, so backends tear down cleanly.
        for (const v of [...engine.list()].reverse()) await engine.remove(v.name, { force: true }).catch(() => undefined);
      }
      store?.close();
      await s?.cleanup();
    });

    it('creates, lists, inspects and hands out a path inside <root>/volumes', async (t) => {
      if (!s) return t.skip(skip);
      const v = await engine.create({ name: 'data-1', labels: { team: 'a' } });
      assert.equal(v.name, 'data-1');
      assert.equal(v.state, 'ready');
      assert.equal(path.dirname(v.path), path.join(fs.realpathSync(s.root), 'volumes'));
      assert.equal(engine.path('data-1'), v.path);
      assert.ok(fs.statSync(v.path).isDirectory());
      assert.equal(fs.statSync(v.path).mode & 0o777, 0o755);
      fs.writeFileSync(path.join(v.path, 'hello'), 'world');
      assert.deepEqual(engine.list().map((x) => x.name), ['data-1']);
      assert.deepEqual(engine.list({ team: 'b' }), []);
      assert.deepEqual(engine.inspect('data-1').labels, { team: 'a' });
      const u = await engine.usage('data-1');
      assert.ok(u.size > 0, `usage ${JSON.stringify(u)}`);
    });

    it('refuses bad names, double create and unknown volumes without changing anything', async (t) => {
      if (!s) return t.skip(skip);
      const before = JSON.stringify(engine.list());
      const entries = fs.readdirSync(path.join(s.root, 'volumes')).sort();
      for (const bad of ['', '..', 'a/b', '../x', 'a..b', '-x', '.hidden', 'x'.repeat(129), 'sp ace', 'a\0b', 'ü']) {
        await expectCode(engine.create({ name: bad }), 'InvalidArgument');
      }
      await expectCode(engine.create({ name: 'data-1' }), 'AlreadyExists', /already exists/);
      await expectCode(engine.create({ name: 'x1', snapshotOf: 'nope' }), 'NotFound');
      await expectCode(engine.create({ name: 'x2', sizeLimit: -5 }), 'InvalidArgument');
      await expectCode(engine.remove('nope'), 'NotFound', /not found/);
      await expectCode(engine.usage('nope'), 'NotFound');
      await expectCode(() => engine.mount('nope', 'c1'), 'NotFound');
      await expectCode(() => engine.path('../etc'), 'InvalidArgument');
      assert.equal(JSON.stringify(engine.list()), before);
      assert.deepEqual(fs.readdirSync(path.join(s.root, 'volumes')).sort(), entries);
      assert.equal(fs.readFileSync(path.join(engine.path('data-1'), 'hello'), 'utf8'), 'world');
    });

    it('snapshots read-only and clones writable, both point-in-time', async (t) => {
      if (!s) return t.skip(skip);
      const snap = await engine.snapshot('data-1', 'data-1-snap');
      const clone = await engine.clone('data-1', 'data-1-clone');
      fs.writeFileSync(path.join(engine.path('data-1'), 'hello'), 'changed');
      assert.equal(snap.readonly, true);
      assert.deepEqual(snap.origin, { kind: 'snapshot', name: 'data-1' });
      assert.equal(fs.readFileSync(path.join(snap.path, 'hello'), 'utf8'), 'world');
      assert.throws(() => fs.writeFileSync(path.join(snap.path, 'new'), 'x'), (e: NodeJS.ErrnoException) => e.code === 'EROFS');
      assert.equal(fs.readFileSync(path.join(clone.path, 'hello'), 'utf8'), 'world');
      fs.writeFileSync(path.join(clone.path, 'hello'), 'clone');
      assert.equal(fs.readFileSync(path.join(engine.path('data-1'), 'hello'), 'utf8'), 'changed');
    });

    it('counts mount references by caller, persists them across a restart, refuses removal while referenced', async (t) => {
      if (!s) return t.skip(skip);
      await engine.create({ name: 'busy' });
      const p = engine.mount('busy', 'container-a');
      engine.mount('busy', 'container-a');
      engine.mount('busy', 'container-b');
      assert.equal(p, engine.path('busy'));
      assert.deepEqual(engine.inspect('busy').refs, { 'container-a': 2, 'container-b': 1 });
      store!.close();
      await open(); // a daemon restart: references come back from SQLite
      assert.deepEqual(engine.inspect('busy').refs, { 'container-a': 2, 'container-b': 1 });
      await expectCode(engine.remove('busy'), 'FailedPrecondition', /in use/);
      assert.ok(fs.existsSync(engine.path('busy')));
      engine.unmount('busy', 'container-b');
      engine.unmount('busy', 'container-b'); // a retried unmount is harmless
      engine.unmount('busy', 'container-a');
      await expectCode(engine.remove('busy'), 'FailedPrecondition');
      engine.unmount('busy', 'container-a');
      const dir = engine.path('busy');
      await engine.remove('busy');
      assert.equal(fs.existsSync(dir), false);
      await expectCode(() => engine.inspect('busy'), 'NotFound');
    });

    it('removes in use only when forced', async (t) => {
      if (!s) return t.skip(skip);
      await engine.create({ name: 'forced' });
      engine.mount('forced', 'c');
      await engine.remove('forced', { force: true });
      assert.equal(engine.list().some((v) => v.name === 'forced'), false);
    });

    it('enforces a size limit and reclaims the space on removal', async (t) => {
      if (!s) return t.skip(skip);
      if (!s.limits) {
        await expectCode(engine.create({ name: 'limited', sizeLimit: 8 * MiB }), 'FailedPrecondition', /size limits/);
        assert.equal(engine.list().some((v) => v.name === 'limited'), false);
        return;
      }
      const v = await engine.create({ name: 'limited', sizeLimit: 8 * MiB });
      assert.equal(v.sizeLimit, 8 * MiB);
      // A clone keeps the origin's limit (taken while the origin is small: a full origin's copy may not fit).
      const c = await engine.clone('limited', 'limited-clone');
      assert.equal(c.sizeLimit, 8 * MiB);
      assert.ok(fill(path.join(c.path, 'big'), 32 * MiB).error, 'the clone is limited too');
      await engine.remove('limited-clone');
      const r = fill(path.join(v.path, 'big'), 32 * MiB);
      assert.ok(r.error, `writing 32 MiB into an 8 MiB volume must fail (wrote ${r.written})`);
      assert.ok(isQuotaError(r.error), `${r.error.code} ${r.error.errno} ${r.error.message}`);
      assert.ok(r.written <= 9 * MiB, `wrote ${r.written}`);
      const u = await engine.usage('limited');
      assert.ok(u.size >= 4 * MiB && u.size <= 9 * MiB, `usage ${JSON.stringify(u)}`);
      assert.equal(u.limit, 8 * MiB);
      await engine.remove('limited');
      assert.equal(fs.existsSync(v.path), false);
    });

    it('finishes a removal a crash interrupted at the next start', async (t) => {
      if (!s) return t.skip(skip);
      const v = await engine.create({ name: 'half' });
      // What remove() persists before touching storage; a crash right after leaves exactly this.
      store!.db.prepare(`UPDATE volumes SET state = 'removing' WHERE name = ?`).run('half');
      store!.close();
      await open();
      await expectCode(() => engine.inspect('half'), 'NotFound');
      assert.equal(fs.existsSync(v.path), false);
    });
  });
}

export function tmpRoot(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'stv-'));
}
