/**
 * End to end with real containerd (1.6 from apt and 2.x from ../shared/tools/containerd2.sh) using strata as its
 * proxy snapshotter, for every driver test/helpers/drivers.ts lists: import a locally built multi-layer image into
 * strata, compare the mounted rootfs with the image's model file by file, run busybox in it with `ctr run`, keep a
 * container's writes across restarts of strata and of containerd, then remove everything and check that strata is
 * empty, in its metadata and on disk.
 *
 * STRATA_E2E_CONTAINERD=1.6 (or 2.x) limits the run to one containerd; STRATA_TEST_DRIVERS limits the drivers.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';
import { Containerd, findContainerd, type Binaries, type Flavor } from '../helpers/containerd';
import { Daemon, removeTreeUnmounting } from '../helpers/daemon';
import { selectedDrivers, type DriverEntry, type DriverTarget } from '../helpers/drivers';
import { buildImage, compareRootfs, e2eLayers, xattrsSupported, E2E_FILES, type BuiltImage, type ExpectedTree } from '../helpers/image';

const NS = 'strata-e2e';
const FLAVORS: Flavor[] = (['1.6', '2.x'] as const).filter((f) => !process.env.STRATA_E2E_CONTAINERD || process.env.STRATA_E2E_CONTAINERD === f);
/** Paths the runtime mounts over in a container; the image has them only as mount points. */
const RUNTIME_PATHS = /^(proc|sys|dev)(\/|$)/;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls until `check` returns undefined (done) or the deadline passes; returns the last complaint. */
async function eventually(check: () => Promise<string | undefined>, timeoutMs: number): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const why = await check();
    if (why === undefined || Date.now() > deadline) return why;
    await sleep(250);
  }
}

/** Every path any layer ever named that the final rootfs must not have (deleted, whited out, hidden by opaque). */
function absentPaths(expected: ExpectedTree): string[] {
  const ever = new Set<string>();
  for (const l of e2eLayers()) for (const op of l.ops) ever.add(op.path);
  return [...ever].filter((p) => !expected.has(p)).sort();
}

/**
 * A shell script for busybox inside the container that prints what the container sees, and the output it must
 * print, both from the image's model: type, mode and owner of every path, absent paths, a hardlink, file contents.
 */
function inspectScript(expected: ExpectedTree): { script: string; want: string } {
  const paths = [...expected.keys()].filter((p) => p !== '' && !RUNTIME_PATHS.test(p)).sort();
  const typeName = { file: 'regular file', dir: 'directory', symlink: 'symbolic link' } as const;
  const lines: string[] = [];
  for (const p of paths) {
    const e = expected.get(p)!;
    lines.push(`/${p}|${(e.type === 'symlink' ? 0o777 : e.mode).toString(8)}|${e.uid}|${e.gid}|${typeName[e.type]}`);
  }
  const absent = absentPaths(expected);
  for (const p of absent) lines.push(`absent /${p}`);
  lines.push('hardlink ok');
  const cats = ['etc/hello.txt', 'data/opaque/new1', 'data/dir-to-delete/c', 'home/user/owned.txt', 'data/abs-link'];
  const catWant = [E2E_FILES.hello, E2E_FILES.opaqueNew, E2E_FILES.recreated, E2E_FILES.owned, E2E_FILES.hello];
  const script = [
    `stat -c '%n|%a|%u|%g|%F' ${paths.map((p) => `'/${p}'`).join(' ')}`,
    ...absent.map((p) => `if [ -e '/${p}' ] || [ -L '/${p}' ]; then echo 'present /${p}'; else echo 'absent /${p}'; fi`),
    `[ "$(stat -c %i /data/hardlink-src)" = "$(stat -c %i /data/hardlink-dst)" ] && echo 'hardlink ok' || echo 'hardlink broken'`,
    ...cats.map((p) => `cat '/${p}'`),
  ].join('\n');
  return { script, want: [...lines, ''].join('\n') + catWant.join('') };
}

/** strata's keys are containerd's `<namespace>/<n>/<key>`; this gives back containerd's key. */
function containerdKey(strataName: string): string {
  const m = /^[^/]+\/\d+\/(.*)$/s.exec(strataName);
  return m ? m[1] : strataName;
}

interface Env {
  flavor: Flavor;
  entry: DriverEntry;
  dir: string;
  img: BuiltImage;
  daemon: Daemon;
  ctrd: Containerd;
}

/** Wraps a step so a failure carries strata's and containerd's last log lines. */
async function step(t: TestContext, name: string, env: () => Env | undefined, fn: (e: Env, t: TestContext) => Promise<void>): Promise<boolean> {
  let ok = false;
  await t.test(name, async (st) => {
    const e = env();
    if (!e) throw new Error('setup failed');
    try {
      await fn(e, st);
      ok = true;
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      throw new Error(`${msg}\n--- strata log (tail) ---\n${e.daemon.tail(30)}\n--- containerd log (tail) ---\n${e.ctrd.logTail(30)}`);
    }
  });
  return ok;
}

async function importImage(e: Env): Promise<void> {
  await e.ctrd.ctrOk(['image', 'import', '--snapshotter', 'strata', e.img.archive], { namespace: NS, timeoutMs: 180_000 });
  // containerd's view: the chain IDs, each the parent of the next.
  const ls = await e.ctrd.ctrOk(['snapshots', '--snapshotter', 'strata', 'ls'], { namespace: NS });
  const rows = new Map(
    ls
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      .map((f): [string, { parent: string; kind: string }] => [f[0], f.length === 3 ? { parent: f[1], kind: f[2] } : { parent: '', kind: f[1] }]),
  );
  e.img.chainIds.forEach((id, i) => {
    const r = rows.get(id);
    assert.ok(r, `ctr snapshots ls lacks layer ${i} (${id}):\n${ls}`);
    assert.equal(r.kind, 'Committed');
    assert.equal(r.parent, i === 0 ? '' : e.img.chainIds[i - 1]);
  });
  // strata's view over its own socket: the same chain, under containerd's namespaced keys.
  const infos = await e.daemon.client.list();
  const committed = infos.filter((i) => i.kind === 'committed');
  assert.deepEqual(committed.map((i) => containerdKey(i.name)).sort(), [...e.img.chainIds].sort(), 'strata holds exactly the image chain');
  for (const i of committed) {
    const idx = e.img.chainIds.indexOf(containerdKey(i.name));
    assert.equal(i.parent === '' ? '' : containerdKey(i.parent), idx === 0 ? '' : e.img.chainIds[idx - 1], `parent of ${i.name}`);
    assert.ok(i.name.startsWith(`${NS}/`), `key ${i.name} carries containerd's namespace`);
    // The label containerd's unpacker sets to find a layer again must come back from strata. 2.x's unpacker sets
    // it; 1.6's client-side unpack (ctr import) sends no labels at all.
    const ref = i.labels['containerd.io/snapshot.ref'];
    if (e.flavor === '2.x' || ref !== undefined) assert.equal(ref, containerdKey(i.name), `labels of ${i.name}: ${JSON.stringify(i.labels)}`);
  }
}

async function checkMountedRootfs(e: Env, t: TestContext): Promise<void> {
  const mnt = path.join(e.dir, 'mnt');
  fs.mkdirSync(mnt, { recursive: true });
  await e.ctrd.ctrOk(['image', 'mount', '--snapshotter', 'strata', e.img.name, mnt], { namespace: NS });
  try {
    if (!xattrsSupported(mnt)) {
      // Seen with zfs-fuse under containerd 2.x only (1.6 keeps the xattr on the same backend): the FUSE mount
      // answers every xattr call with EOPNOTSUPP. A backend limitation, reported rather than failed.
      t.diagnostic(`xattrs are not supported on ${e.entry.label}'s mount under containerd ${e.flavor}: user.* xattrs not compared`);
    }
    const diffs = compareRootfs(mnt, e.img.expected);
    assert.deepEqual(diffs, [], `the rootfs strata mounted differs from the image:\n  ${diffs.join('\n  ')}`);
    // `ctr image mount` without --rw is a View: it must be read-only for real.
    assert.throws(() => fs.writeFileSync(path.join(mnt, 'data/new-file'), 'x'), { code: 'EROFS' });
  } finally {
    await e.ctrd.ctrOk(['image', 'unmount', '--rm', mnt], { namespace: NS });
  }
}

/** A synchronous garbage collection in containerd: deleting a lease with --sync collects everything unreferenced. */
async function syncGc(e: Env): Promise<void> {
  const id = (await e.ctrd.ctrOk(['leases', 'create'], { namespace: NS })).trim().split(/\s+/)[0];
  await e.ctrd.ctrOk(['leases', 'delete', '--sync', id], { namespace: NS });
}

async function runContainer(e: Env, t: TestContext): Promise<void> {
  const { script, want } = inspectScript(e.img.expected);
  const out = await e.ctrd.ctrOk(['run', '--rm', '--snapshotter', 'strata', e.img.name, 'inspect', '/bin/sh', '-c', script], { namespace: NS });
  assert.equal(out, want);
  // --rm removed the container; containerd's GC then removes its active snapshot from strata (asynchronously).
  const leftover = async (): Promise<string | undefined> => {
    const left = (await e.daemon.client.list()).filter((i) => i.kind !== 'committed');
    return left.length ? `ctr run --rm left snapshots behind: ${left.map((i) => i.name).join(', ')}` : undefined;
  };
  let why = await eventually(leftover, 10_000);
  if (why) {
    // containerd retries a failed GC removal only on its next collection, which nothing here would schedule:
    // run one synchronously and say so.
    const said = e.ctrd.logTail(400).split('\n').filter((l) => /remov|garbage|gc/i.test(l) && !/level=(info|debug)/.test(l)).slice(-5);
    t.diagnostic(`${why}; forcing a synchronous containerd GC. containerd said: ${said.join(' | ') || 'nothing'}`);
    await syncGc(e);
    why = await eventually(leftover, 10_000);
  }
  assert.equal(why, undefined, why);
}

/** The container's command: report what earlier runs did, then change the rootfs again. */
const PERSIST_SCRIPT = [
  'cat /etc/hello.txt',
  '[ -e /data/keep.txt ] && echo keep present || echo keep gone',
  '[ -d /data/opaque ] && echo opaque present || echo opaque gone',
  'echo run >> /data/runs.txt',
  'cat /data/runs.txt',
  'echo changed > /etc/hello.txt', // copy-up of a lower file
  'rm -f /data/keep.txt', // whiteout of a lower file
  'rm -rf /data/opaque', // whiteout of a lower dir
  'mkdir -p /data/new/dir && echo nested > /data/new/dir/f',
  'sync',
].join('\n');

function persistWant(run: number): string {
  const first = run === 1;
  return [
    first ? E2E_FILES.hello.trimEnd() : 'changed',
    first ? 'keep present' : 'keep gone',
    first ? 'opaque present' : 'opaque gone',
    ...Array.from({ length: run }, () => 'run'),
    '',
  ].join('\n');
}

/**
 * containerd dials the proxy lazily and backs off after a failed connection, so the first calls after strata
 * comes back may fail with Unavailable for a moment; retry those (and only those) for a while.
 */
async function startTask(e: Env, t: TestContext, id: string): Promise<string> {
  const started = Date.now();
  const deadline = started + 30_000;
  for (let attempt = 1; ; attempt++) {
    const r = await e.ctrd.ctr(['task', 'start', id], { namespace: NS });
    if (r.code === 0) {
      if (attempt > 1) t.diagnostic(`ctr task start ${id} succeeded on attempt ${attempt}, ${Date.now() - started} ms after the first`);
      return r.stdout;
    }
    const transient = /unavailable|connection refused|transport|no such file or directory.*sock/i.test(r.stderr);
    if (!transient || Date.now() > deadline) {
      throw new Error(`ctr task start ${id} failed (${r.code}): ${r.stderr}${r.stdout}\n--- containerd log ---\n${e.ctrd.logTail()}`);
    }
    await sleep(500);
  }
}

/** ctr 1.6 (urfave/cli v1) reads the command's `-c` as its own --config unless `--` ends its flags; ctr 2.x
 *  stops at the first argument and would pass `--` on to the container as the command. */
function argsSeparator(flavor: Flavor): string[] {
  return flavor === '1.6' ? ['--'] : [];
}

async function writesSurviveRestarts(e: Env, t: TestContext): Promise<void> {
  await e.ctrd.ctrOk(['container', 'create', '--snapshotter', 'strata', e.img.name, 'persist', ...argsSeparator(e.flavor), '/bin/sh', '-c', PERSIST_SCRIPT], { namespace: NS });
  const active = (await e.daemon.client.list()).filter((i) => i.kind === 'active');
  assert.deepEqual(active.map((i) => containerdKey(i.name)), ['persist'], 'the container has one active snapshot in strata');
  assert.equal(containerdKey(active[0].parent), e.img.chainIds[e.img.chainIds.length - 1], "the container's parent is the image's top layer");

  assert.equal(await startTask(e, t, 'persist'), persistWant(1), 'first run');

  // strata restarts under a running containerd.
  await e.daemon.restart();
  assert.equal(await startTask(e, t, 'persist'), persistWant(2), 'after strata restarted');

  // Both go down (containerd first, as a host shutdown would) and come back in the worse boot order: containerd
  // first, with its proxy plugin's socket not there yet, then strata.
  await e.ctrd.stop();
  await e.daemon.stop();
  await e.ctrd.restart();
  await e.daemon.restart();
  assert.equal(await startTask(e, t, 'persist'), persistWant(3), 'after strata and containerd restarted');
}

async function removeLeavesNothing(e: Env, t: TestContext): Promise<void> {
  await e.ctrd.ctrOk(['container', 'rm', 'persist'], { namespace: NS });
  await e.ctrd.ctrOk(['image', 'rm', '--sync', e.img.name], { namespace: NS });
  const ls = await e.ctrd.ctrOk(['snapshots', '--snapshotter', 'strata', 'ls'], { namespace: NS });
  assert.equal(ls.trim().split('\n').length, 1, `ctr snapshots ls is not empty:\n${ls}`);
  let left = await e.daemon.client.list();
  if (left.length) {
    t.diagnostic(`strata still lists ${left.map((i) => i.name).join(', ')} after image rm --sync; forcing another GC`);
    await syncGc(e);
    left = await e.daemon.client.list();
  }
  assert.deepEqual(left.map((i) => i.name), [], 'strata still lists snapshots after image rm --sync');
  if (!e.entry.snapshotDirs) return;
  // Remove only drops metadata; the bytes go in the background (containerd's GC also calls Cleanup).
  const snapDir = path.join(e.daemon.root, 'snapshots');
  const why = await eventually(async () => {
    const dirs = fs.existsSync(snapDir) ? fs.readdirSync(snapDir) : [];
    if (dirs.length === 0) return undefined;
    await e.daemon.client.cleanup().catch(() => undefined);
    return `${snapDir} still has ${dirs.join(', ')}`;
  }, 30_000);
  assert.equal(why, undefined, why);
}

let imageDir: string | undefined;
let builtImage: BuiltImage | undefined;

/** One image for the whole file: it is pure data, and building it reads busybox once. */
function image(): BuiltImage {
  if (!builtImage) {
    imageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-e2e-img-'));
    builtImage = buildImage(imageDir);
  }
  return builtImage;
}

process.on('exit', () => {
  if (imageDir) fs.rmSync(imageDir, { recursive: true, force: true });
});

for (const flavor of FLAVORS) {
  const found: Binaries | string = findContainerd(flavor);
  for (const entry of selectedDrivers()) {
    test(`containerd ${flavor} with strata ${entry.label}`, { timeout: 600_000 }, async (t) => {
      if (typeof found === 'string' || !fs.existsSync('/bin/busybox')) {
        const missing = typeof found === 'string' ? found : 'no static busybox for the container (apt-get install busybox-static)';
        // CI installs everything these tests need, so there a missing piece is a failure, not a skip.
        if (process.env.CI === 'true') assert.fail(`CI must run this test: ${missing}`);
        t.skip(missing);
        return;
      }
      const target: DriverTarget | { skip: string } = await entry.setup();
      if ('skip' in target) {
        t.skip(target.skip);
        return;
      }
      let env: Env | undefined;
      let daemon: Daemon | undefined;
      let ctrd: Containerd | undefined;
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-e2e-'));
      try {
        daemon = await Daemon.start({ driver: entry.driver, root: target.root, driverConfig: target.config });
        ctrd = await Containerd.start({ bins: found, dir, strataAddress: daemon.address });
        t.diagnostic(`${found.version}; strata ${entry.driver} at ${daemon.root}`);
        env = { flavor, entry, dir, img: image(), daemon, ctrd };
        const get = (): Env | undefined => env;
        // Each step builds on the previous one's state; later steps skip once one fails.
        const steps: Array<[string, (e: Env, t: TestContext) => Promise<void>]> = [
          ['ctr image import --snapshotter strata unpacks the chain into strata', importImage],
          ['the mounted image rootfs matches the image file by file', checkMountedRootfs],
          ['ctr run --rm sees the image content', runContainer],
          ["a container's writes survive restarts of strata and containerd", writesSurviveRestarts],
          ['container rm + image rm --sync leave nothing in strata', removeLeavesNothing],
        ];
        let failed = false;
        for (const [name, fn] of steps) {
          if (failed) {
            await t.test(name, { skip: 'an earlier step failed' }, () => undefined);
            continue;
          }
          failed = !(await step(t, name, get, fn));
        }
      } finally {
        await ctrd?.destroy();
        await daemon?.dispose().catch(() => undefined);
        await removeTreeUnmounting(dir);
        await target.teardown().catch(() => undefined);
      }
    });
  }
}
