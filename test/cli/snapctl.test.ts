/**
 * snapctl as people and scripts run it: a child process against a real daemon (overlay and native), checking
 * the tables, the --json shapes, exit codes and the message when no daemon is running.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Daemon } from '../helpers/daemon';
import { DRIVERS } from '../helpers/drivers';

/** dist/test/cli → dist/src/cli/snapctl.js */
const SNAPCTL = path.resolve(__dirname, '..', '..', 'src', 'cli', 'snapctl.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function snapctl(address: string | undefined, args: string[], timeoutMs = 60_000): Promise<Run> {
  const env = { ...process.env };
  delete env.STRATA_ADDRESS;
  if (address) env.STRATA_ADDRESS = address;
  return new Promise((resolve) => {
    execFile(process.execPath, [SNAPCTL, ...args], { env, timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs and asserts the exit code, showing stderr when it differs. */
async function ok(address: string, args: string[], code = 0, timeoutMs?: number): Promise<Run> {
  const r = await snapctl(address, args, timeoutMs);
  assert.equal(r.code, code, `snapctl ${args.join(' ')} exited ${r.code}, wanted ${code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

function jsonOf<T>(r: Run): T {
  return JSON.parse(r.stdout) as T;
}

test('a daemon that is not running is named with the socket and how to start it (exit 3)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'snapctl-none-'));
  try {
    const sock = path.join(dir, 'none.sock');
    const r = await snapctl(sock, ['ls']);
    assert.equal(r.code, 3);
    assert.equal(r.stderr, `snapctl: strata is not running at ${sock} (connect ENOENT); start it with \`strata serve\`\n`);
    // --address beats STRATA_ADDRESS.
    const r2 = await snapctl('/nonexistent/x.sock', ['--address', sock, 'status', '--json']);
    assert.equal(r2.code, 3);
    assert.match(r2.stderr, new RegExp(`not running at ${sock.replace(/[.]/g, '\\.')}`));
    // A stale socket (file present, nobody listening) says ECONNREFUSED.
    const net = await import('node:net');
    const srv = net.createServer();
    await new Promise<void>((res) => srv.listen(sock, res));
    // Closing a server unlinks its socket; keep a stale file by renaming a second one is not portable, so use a plain file.
    await new Promise<void>((res) => srv.close(() => res()));
    fs.writeFileSync(sock, '');
    const r3 = await snapctl(sock, ['ls']);
    assert.equal(r3.code, 3);
    assert.match(r3.stderr, /not running at .* \(connect (ECONNREFUSED|ENOTSOCK)\)/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('usage errors exit 2 with the command usage; help exits 0', async () => {
  const none = '/nonexistent/x.sock';
  const help = await snapctl(none, ['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^usage: snapctl /);
  assert.match(help.stdout, /Exit codes:/);
  const cmdHelp = await snapctl(none, ['prepare', '--help']);
  assert.equal(cmdHelp.code, 0);
  assert.match(cmdHelp.stdout, /usage: snapctl prepare KEY \[PARENT\]/);
  const unknown = await snapctl(none, ['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
  const missing = await snapctl(none, ['info']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /missing arguments\nusage: snapctl info KEY/);
  const badFlag = await snapctl(none, ['ls', '--nope']);
  assert.equal(badFlag.code, 2);
  const badLabel = await snapctl(none, ['prepare', 'k', '--label', 'novalue']);
  assert.equal(badLabel.code, 2);
  assert.match(badLabel.stderr, /not of the form key=value/);
});

test('snapctl apply needs no daemon and names itself in its errors: a missing layer, a corrupt one', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'snapctl-apply-'));
  try {
    const none = '/nonexistent/x.sock';
    const target = path.join(dir, 'root');
    fs.mkdirSync(target);
    const missing = await snapctl(none, ['apply', path.join(dir, 'no-such-layer.tar'), target]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^snapctl: apply: reading the layer: ENOENT: .*no-such-layer\.tar/);
    const corrupt = path.join(dir, 'corrupt.tar.gz');
    fs.writeFileSync(corrupt, Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]), Buffer.alloc(64, 0xff)]));
    const bad = await snapctl(none, ['apply', corrupt, target]);
    assert.equal(bad.code, 7, bad.stderr);
    assert.match(bad.stderr, /^snapctl: apply: gzip stream: /);
    assert.deepEqual(fs.readdirSync(target), []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const wanted = (process.env.STRATA_TEST_DRIVERS ?? 'overlay,native').split(',');
for (const entry of DRIVERS.filter((d) => (d.label === 'overlay' || d.label === 'native') && wanted.includes(d.label))) {
  describe(`snapctl against strata (${entry.label})`, () => {
    let daemon: Daemon | undefined;
    let skip: string | undefined;
    let a = '';
    let mnt = '';

    before(async () => {
      const built = path.resolve(__dirname, '..', '..', 'drivers', entry.driver, 'index.js');
      if (!fs.existsSync(built)) {
        skip = `driver ${entry.driver} is not built`;
        return;
      }
      try {
        daemon = await Daemon.start({ driver: entry.driver });
      } catch (e) {
        skip = `cannot start strata with ${entry.driver}: ${(e as Error).message.split('\n')[0]}`;
        return;
      }
      a = daemon.address;
      mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'snapctl-mnt-'));
    });

    after(async () => {
      if (mnt) {
        await snapctl(a, ['umount', mnt]);
        fs.rmSync(mnt, { recursive: true, force: true });
      }
      await daemon?.dispose();
    });

    test('prepare, mount, write, umount, commit, view, then ls/tree/info/mounts/usage/label/status', async (t) => {
      if (skip) return t.skip(skip);

      const prep = await ok(a, ['prepare', 'base']);
      assert.match(prep.stdout, /^TYPE +SOURCE +OPTIONS\n/);
      await ok(a, ['mount', 'base', mnt]);
      fs.writeFileSync(path.join(mnt, 'hello'), Buffer.alloc(10_000, 1));
      fs.mkdirSync(path.join(mnt, 'dir'));
      await ok(a, ['umount', mnt]);
      assert.equal(fs.readdirSync(mnt).length, 0, 'umount leaves the directory empty');
      assert.equal((await ok(a, ['commit', 'layer 1', 'base'])).stdout, 'layer 1\n');
      const pj = jsonOf<{ key: string; kind: string; mounts: { type: string }[] }>(await ok(a, ['--json', 'prepare', 'ctr/1', 'layer 1', '--label', 'a=b', '-l', 'c=d']));
      assert.equal(pj.key, 'ctr/1');
      assert.equal(pj.kind, 'active');
      assert.ok(pj.mounts.length >= 1);
      await ok(a, ['view', 'v1', 'layer 1']);

      // mount stacks a child on its parent the way containerd would; a view is really read-only.
      await ok(a, ['mount', 'ctr/1', mnt]);
      try {
        assert.equal(fs.statSync(path.join(mnt, 'hello')).size, 10_000);
        fs.writeFileSync(path.join(mnt, 'dir', 'new'), 'x');
      } finally {
        await ok(a, ['umount', mnt]);
      }
      assert.match((await ok(a, ['--json', 'mount', 'v1', mnt])).stdout, /"target": /);
      try {
        assert.ok(fs.existsSync(path.join(mnt, 'hello')));
        assert.throws(() => fs.writeFileSync(path.join(mnt, 'w'), 'x'), { code: 'EROFS' });
      } finally {
        await ok(a, ['umount', mnt]);
      }
      await ok(a, ['mount', 'layer 1', mnt], 6); // committed snapshots have no mounts

      // ls: table for people, JSON for scripts, containerd filters.
      const ls = await ok(a, ['ls']);
      const lines = ls.stdout.trimEnd().split('\n');
      assert.match(lines[0]!, /^NAME +KIND +PARENT +CREATED$/);
      assert.equal(lines.length, 4);
      assert.match(lines[1]!, /^layer 1 +committed +(just now|\d+ seconds? ago)$/);
      assert.match(lines[2]!, /^ctr\/1 +active +layer 1 +/);
      assert.match(lines[3]!, /^v1 +view +layer 1 +/);
      const lj = jsonOf<{ name: string; parent: string; kind: string; labels: Record<string, string>; created: string }[]>(await ok(a, ['ls', '--json']));
      assert.deepEqual(lj.map((i) => [i.name, i.kind, i.parent]), [['layer 1', 'committed', ''], ['ctr/1', 'active', 'layer 1'], ['v1', 'view', 'layer 1']]);
      assert.deepEqual(lj[1]!.labels, { a: 'b', c: 'd' });
      assert.ok(!Number.isNaN(Date.parse(lj[1]!.created)));
      assert.equal((await ok(a, ['ls', '-q', '--filter', 'kind==committed'])).stdout, 'layer 1\n');
      const or = jsonOf<{ name: string }[]>(await ok(a, ['ls', '--json', '--filter', 'kind==view', '--filter', 'labels.a==b']));
      assert.deepEqual(or.map((i) => i.name).sort(), ['ctr/1', 'v1']);

      // tree
      assert.equal((await ok(a, ['tree'])).stdout, 'layer 1 (committed)\n├── ctr/1 (active)\n└── v1 (view)\n');
      const tj = jsonOf<{ name: string; children: { name: string }[] }[]>(await ok(a, ['tree', '--json']));
      assert.equal(tj.length, 1);
      assert.deepEqual(tj[0]!.children.map((c) => c.name), ['ctr/1', 'v1']);

      // info: id, chain, path, usage with its method, mounts.
      const ij = jsonOf<{
        name: string;
        id: number;
        kind: string;
        parents: { name: string; id: number }[];
        path: string;
        usage: { size: number; inodes: number; method: string };
        sizeLimit: number;
        mounts: unknown[];
        labels: Record<string, string>;
      }>(await ok(a, ['info', 'ctr/1', '--json']));
      assert.equal(ij.kind, 'active');
      assert.equal(ij.parents.length, 1);
      assert.equal(ij.parents[0]!.name, 'layer 1');
      assert.equal(typeof ij.id, 'number');
      assert.ok(fs.statSync(ij.path).isDirectory(), `info path ${ij.path} exists`);
      assert.equal(typeof ij.usage.method, 'string');
      assert.equal(ij.sizeLimit, 0);
      assert.ok(ij.mounts.length >= 1);
      const cj = jsonOf<{ usage: { size: number; inodes: number }; mounts: unknown[]; path: string; pathHoldsChanges: boolean }>(await ok(a, ['info', 'layer 1', '--json']));
      // An overlay layer is its upper dir; a native layer a client committed is a whole tree.
      assert.equal(cj.pathHoldsChanges, entry.driver === 'overlay');
      assert.equal(/^Path: .*own changes/m.test((await ok(a, ['info', 'layer 1'])).stdout), entry.driver === 'overlay');
      assert.ok(cj.usage.size >= 10_000, `committed usage ${cj.usage.size} counts the 10 kB file`);
      assert.ok(cj.usage.inodes >= 2);
      assert.deepEqual(cj.mounts, []);
      assert.ok(fs.existsSync(path.join(cj.path, 'hello')), 'the committed layer path holds the file');
      const info = (await ok(a, ['info', 'ctr/1'])).stdout;
      assert.match(info, /^Name: +ctr\/1$/m);
      assert.match(info, /^Kind: +active$/m);
      assert.match(info, new RegExp(`^Parent: +layer 1 \\(#${ij.parents[0]!.id}\\)$`, 'm'));
      assert.match(info, /^Usage: +.* inodes, by \w+$/m);
      assert.match(info, /^Labels: +a=b\n +c=d$/m);
      assert.match(info, /^Mounts: +\w+ /m);

      // mounts: table, shell form, JSON.
      const m = await ok(a, ['mounts', 'ctr/1']);
      assert.match(m.stdout, /^TYPE +SOURCE +OPTIONS\n/);
      assert.match(m.stdout, /\n# to mount it by hand:\nmount .* \/mnt\n$/);
      const sh = (await ok(a, ['mounts', 'ctr/1', '--shell', '--target', '/x y'])).stdout;
      assert.match(sh, /^mount (-t \w+ )?-o \S+ \S+ '\/x y'\n$/);
      assert.equal(jsonOf<unknown[]>(await ok(a, ['mounts', 'ctr/1', '--json'])).length, ij.mounts.length);

      // usage: all with a total; one key as JSON.
      const u = (await ok(a, ['usage'])).stdout.trimEnd().split('\n');
      assert.match(u[0]!, /^NAME +KIND +SIZE +INODES$/);
      assert.equal(u.length, 5);
      assert.match(u[4]!, /^TOTAL +\d/);
      const uj = jsonOf<{ name: string; size: number; inodes: number }>(await ok(a, ['usage', 'layer 1', '--json']));
      assert.equal(uj.size, cj.usage.size);
      const ub = (await ok(a, ['usage', '--bytes'])).stdout;
      assert.match(ub, new RegExp(`^layer 1 +committed +${cj.usage.size} +${cj.usage.inodes}$`, 'm'));

      // label: set and remove in one call; others untouched.
      assert.equal((await ok(a, ['label', 'ctr/1', 'x=y', 'a='])).stdout, 'c: d\nx: y\n');
      const lbl = jsonOf<{ labels: Record<string, string> }>(await ok(a, ['--json', 'label', 'ctr/1', 'c=']));
      assert.deepEqual(lbl.labels, { x: 'y' });

      // status
      const st = jsonOf<{ driver: string; root: string; address: string; counts: Record<string, number>; pendingReclaims: number }>(await ok(a, ['status', '--json']));
      assert.equal(st.driver, entry.driver);
      assert.equal(st.address, a);
      assert.deepEqual(st.counts, { active: 1, views: 1, committed: 1 });
      assert.match((await ok(a, ['status'])).stdout, new RegExp(`^Driver: +${entry.driver}$`, 'm'));
    });

    test('failures exit with the documented codes and leave state alone', async (t) => {
      if (skip) return t.skip(skip);
      assert.match((await ok(a, ['info', 'nope'], 4)).stderr, /^snapctl: .*nope.* \(NOT_FOUND\)\n$/);
      await ok(a, ['mounts', 'nope'], 4);
      await ok(a, ['prepare', 'ctr/1', 'layer 1'], 5);
      await ok(a, ['rm', 'layer 1'], 6);
      await ok(a, ['commit', 'c2', 'v1'], 6);
      await ok(a, ['prepare', 'x', 'ctr/1'], 7);
      // rm goes on after a failure and exits with the last failure's code.
      const rm = await ok(a, ['rm', 'nope', 'v1'], 4);
      assert.equal(rm.stdout, 'v1\n');
      assert.match(rm.stderr, /NOT_FOUND/);
      const rm2 = await ok(a, ['rm', 'v1'], 4);
      assert.equal(rm2.stdout, '');
      assert.deepEqual(jsonOf<{ name: string }[]>(await ok(a, ['ls', '--json'])).map((i) => i.name), ['layer 1', 'ctr/1']);
      // A short timeout: a daemon that never answers a bad filter must fail here, not stall the suite.
      await ok(a, ['ls', '--filter', 'kind=='], 7, 10_000);
    });

    test('rm children then parent, cleanup: nothing left', async (t) => {
      if (skip) return t.skip(skip);
      const rm = jsonOf<{ removed: string[] }>(await ok(a, ['--json', 'rm', 'ctr/1', 'layer 1']));
      assert.deepEqual(rm.removed, ['ctr/1', 'layer 1']);
      assert.match((await ok(a, ['cleanup'])).stdout, /^cleanup done/);
      assert.deepEqual(jsonOf<unknown[]>(await ok(a, ['ls', '--json'])), []);
      assert.equal((await ok(a, ['ls'])).stdout, 'NAME   KIND   PARENT   CREATED\n');
      assert.equal((await ok(a, ['tree'])).stdout, '');
      const st = jsonOf<{ pendingReclaims: number; counts: Record<string, number> }>(await ok(a, ['status', '--json']));
      assert.equal(st.pendingReclaims, 0);
      assert.deepEqual(st.counts, { active: 0, views: 0, committed: 0 });
      const dirs = fs.existsSync(path.join(daemon!.root, 'snapshots')) ? fs.readdirSync(path.join(daemon!.root, 'snapshots')) : [];
      assert.deepEqual(dirs, []);
    });
  });
}
