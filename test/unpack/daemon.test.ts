/**
 * The daemon path, on every driver entry of test/helpers/drivers.ts (STRATA_TEST_DRIVERS narrows them):
 * `snapctl import` of an OCI layout, an OCI archive and a docker save tarball (chain-ID names, skipping what exists), the resulting tree equal to the layers applied by the engine
 * into a plain directory; a refused layer leaves no snapshot behind; diff round trips (the diff of an active
 * snapshot applied on its parent gives the same tree).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test as nodeTest } from 'node:test';
import { native } from '../../native/index';
import { AdminApiClient } from '../../src/client/admin';
import { LayersApiClient } from '../../src/client/layers';
import { main as snapctl } from '../../src/cli/snapctl';
import { mountTemp } from '../../src/core/mount';
import { applyLayer } from '../../src/unpack/engine';
import { chainIds } from '../../src/unpack/image';
import { Daemon } from '../helpers/daemon';
import { selectedDrivers, type DriverTarget } from '../helpers/drivers';
import { assertTreesEqual, snapshotTree } from '../helpers/tree';
import { TarBuilder } from './builder';
import { dockerSave, sampleLayers, tarOfDir, writeOciLayout, type BuiltLayer } from './fixture';

const isRoot = process.geteuid?.() === 0;

function capture(): { io: Parameters<typeof snapctl>[1]; out: () => string } {
  let buf = '';
  const w = new Writable({
    write(c: Buffer, _e, cb) {
      buf += c.toString();
      cb();
    },
  });
  return { io: { stdout: w, stderr: w, env: {} }, out: () => buf };
}

/** The layers applied by the engine, in delete form, into a fresh directory: the reference tree. */
async function reference(tmp: string, layers: BuiltLayer[]): Promise<string> {
  const dir = fs.mkdtempSync(path.join(tmp, 'ref-'));
  // A new snapshot's root is 0755 (DESIGN.md); mkdtemp makes 0700.
  fs.chmodSync(dir, 0o755);
  for (const [i, l] of layers.entries()) {
    const f = path.join(tmp, `ref-layer-${i}`);
    fs.writeFileSync(f, l.blob);
    await applyLayer({ layer: f, root: dir, whiteouts: 'delete', sync: 'none' });
  }
  return dir;
}

for (const entry of selectedDrivers()) {
  const driver = entry.label;
  describe(`layers service on ${driver}`, { skip: isRoot ? false : 'needs root' }, () => {
    let d: Daemon;
    let tmp: string;
    let layersClient: LayersApiClient;
    let target: DriverTarget | undefined;
    let skipReason: string | undefined;

    before(async () => {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-layers-'));
      const t = await entry.setup();
      if ('skip' in t) {
        skipReason = t.skip;
        return;
      }
      target = t;
      d = await Daemon.start({ driver: entry.driver, root: t.root, driverConfig: t.config });
      layersClient = new LayersApiClient(d.address);
    }, { timeout: 120_000 });
    after(async () => {
      layersClient?.close();
      await d?.dispose();
      await target?.teardown();
      fs.rmSync(tmp, { recursive: true, force: true });
    }, { timeout: 120_000 });

    /** Each test skips with the backend's reason when setup found it missing. */
    const test = (name: string, fn: () => Promise<void>): void => {
      nodeTest(name, async (t) => {
        if (skipReason !== undefined) {
          t.skip(skipReason);
          return;
        }
        await fn();
      });
    };

    const run = async (args: string[]): Promise<{ code: number; out: string }> => {
      const c = capture();
      c.io.env.STRATA_ADDRESS = d.address;
      const code = await snapctl(args, c.io);
      return { code, out: c.out() };
    };

    const viewTree = async (key: string) => {
      const vk = `view-${key}-${Math.random().toString(16).slice(2)}`;
      // Where the backend cannot list xattrs on read-only mounts (zfs-fuse), read through an active child.
      const mounts = entry.readCommittedVia === 'active' ? await d.client.prepare(vk, key) : await d.client.view(vk, key);
      const m = await mountTemp(mounts, tmp, 'view-');
      try {
        return snapshotTree(m.dir);
      } finally {
        await m.release();
        await d.client.remove(vk);
      }
    };

    const importAndCompare = async (image: string, layers: BuiltLayer[]): Promise<void> => {
      const r = await run(['import', image]);
      assert.equal(r.code, 0, r.out);
      const chains = chainIds(layers.map((l) => l.diffId));
      assert.match(r.out, new RegExp(`layer 3/3 ${chains[2]}`));
      for (const [i, c] of chains.entries()) {
        const info = await d.client.stat(c);
        assert.equal(info.kind, 'committed');
        assert.equal(info.parent, i === 0 ? '' : chains[i - 1]);
      }
      const ref = await reference(tmp, layers);
      assertTreesEqual(await viewTree(chains[2]!), snapshotTree(ref), `${driver} import of ${path.basename(image)}`);
      // Each layer below is still exactly itself: unpacking its children (which replace a hardlinked file,
      // white out files and dirs, link to its files) changed nothing in it, whatever the driver shares.
      for (const i of [0, 1]) {
        const below = await reference(tmp, layers.slice(0, i + 1));
        assertTreesEqual(await viewTree(chains[i]!), snapshotTree(below), `${driver} layer ${i + 1} after its children`);
      }
      const again = await run(['import', image]);
      assert.equal(again.code, 0, again.out);
      assert.equal(again.out.match(/already present/g)?.length, 3, again.out);
    };

    test('import an OCI image layout; again skips every layer', async () => {
      const layers = sampleLayers('a');
      const dir = path.join(tmp, 'oci-a');
      writeOciLayout(dir, layers);
      await importAndCompare(dir, layers);
    });

    test('import a docker save tarball', async () => {
      const layers = sampleLayers('b');
      const f = path.join(tmp, 'save-b.tar');
      fs.writeFileSync(f, dockerSave(layers));
      await importAndCompare(f, layers);
    });

    test('import an OCI archive', async () => {
      const layers = sampleLayers('c');
      const dir = path.join(tmp, 'oci-c');
      writeOciLayout(dir, layers);
      const f = path.join(tmp, 'oci-c.tar');
      fs.writeFileSync(f, tarOfDir(dir));
      await importAndCompare(f, layers);
    });

    test('a refused or truncated layer leaves no snapshot behind', async () => {
      const before = (await d.client.list()).map((i) => i.name).sort();
      const bad = path.join(tmp, 'bad.tar');
      const good = sampleLayers('d')[0]!.tar;
      fs.writeFileSync(bad, good.subarray(0, good.length - 4096 - 100));
      await assert.rejects(layersClient.unpack({ name: 'bad', layerPath: bad }), (e: { code?: number }) => e.code === 3 /* INVALID_ARGUMENT */);
      const evil = path.join(tmp, 'evil.tar');
      fs.writeFileSync(evil, new TarBuilder().file('../../etc/evil', 'x').build());
      await assert.rejects(layersClient.unpack({ name: 'evil', layerPath: evil }), (e: { code?: number }) => e.code === 3);
      const wrongId = path.join(tmp, 'ok.tar');
      fs.writeFileSync(wrongId, good);
      await assert.rejects(layersClient.unpack({ name: 'wrong', layerPath: wrongId, diffId: 'sha256:' + '1'.repeat(64) }), (e: { code?: number }) => e.code === 9 /* FAILED_PRECONDITION */);
      const afterNames = (await d.client.list()).map((i) => i.name).sort();
      assert.deepEqual(afterNames, before);
    });

    test('the diff of a committed layer, applied on its parent, gives the layer (its change set where the driver keeps one)', async () => {
      // Compared as two trees, a new name for an unchanged lower file is written as a copy: a hardlink to a file
      // outside the diff is what containerd 1.6's applier cannot resolve (fixture.ts). So the drivers without a
      // change set get the layers without that link; overlay's and native's change sets keep it.
      const changeSet = entry.driver === 'overlay' || entry.driver === 'native';
      const layers = sampleLayers('g', changeSet);
      const dir = path.join(tmp, 'oci-g');
      writeOciLayout(dir, layers);
      assert.equal((await run(['import', dir])).code, 0);
      const chains = chainIds(layers.map((l) => l.diffId));
      const roundTrip = async (what: string): Promise<void> => {
        for (const i of [1, 2]) {
          const out = path.join(tmp, `committed-${what}-${i}.tar`);
          const r = await layersClient.diff(chains[i]!, out, 'none');
          assert.ok(r.entries > 0);
          const name = `crt-${what}-${i}`;
          await layersClient.unpack({ name, parent: chains[i - 1]!, layerPath: out, diffId: r.diffId });
          assertTreesEqual(await viewTree(name), await viewTree(chains[i]!), `${driver}: layer ${i + 1} through its diff (${what})`);
        }
      };
      const admin = new AdminApiClient(d.address);
      try {
        // Which layers are change sets, as `snapctl info` says: every overlay layer; native's unpacked on a parent.
        const held = await Promise.all(chains.map(async (c) => (await admin.info(c, { skipUsage: true })).pathHoldsChanges));
        assert.deepEqual(held, entry.driver === 'overlay' ? [true, true, true] : entry.driver === 'native' ? [false, true, true] : [false, false, false]);
        await roundTrip('as stored');
        if (entry.driver !== 'overlay') return;
        // A directory the kernel redirected (renamed under redirect_dir=on): the change set cannot be read as one,
        // so Diff compares the whole trees instead. The redirect names the directory's own path, so what the
        // overlay shows does not change.
        const upper = (await admin.info(chains[2]!, { skipUsage: true })).path;
        native().lsetxattr(path.join(upper, 'etc'), 'trusted.overlay.redirect', Buffer.from('/etc'), 0);
      } finally {
        admin.close();
      }
      await roundTrip('with a redirect');
      assert.match(d.tail(400), /comparing whole trees/, 'the redirect sent Diff to the whole trees');
    });

    test('diff round trip: the diff of an active snapshot applied on its parent gives the same tree', async () => {
      const layers = sampleLayers('e');
      const dir = path.join(tmp, 'oci-e');
      const top = writeOciLayout(dir, layers);
      assert.equal((await run(['import', dir])).code, 0);
      const mounts = await d.client.prepare('act', top);
      const m = await mountTemp(mounts, tmp, 'act-');
      try {
        const r = m.dir;
        fs.rmSync(path.join(r, 'usr/bin/sh'));
        fs.rmSync(path.join(r, 'home'), { recursive: true });
        fs.writeFileSync(path.join(r, 'etc/new'), 'new file');
        fs.rmSync(path.join(r, 'etc/passwd-sym'));
        fs.mkdirSync(path.join(r, 'etc/passwd-sym'));
        fs.writeFileSync(path.join(r, 'etc/passwd-sym/inside'), 'i');
        fs.chmodSync(path.join(r, 'etc/passwd'), 0o600);
        native().lsetxattr(path.join(r, 'usr/bin/noted'), 'user.more', Buffer.from('x'), 0);
        fs.linkSync(path.join(r, 'etc/new'), path.join(r, 'etc/new-link'));
        fs.rmSync(path.join(r, 'var'), { recursive: true });
        fs.mkdirSync(path.join(r, 'var'));
        fs.writeFileSync(path.join(r, 'var/only'), 'only');
        fs.writeFileSync(path.join(r, 'usr/bin/tool-link'), 'rewritten through a hardlink');
      } finally {
        await m.release();
      }
      for (const compression of ['gzip', 'zstd', 'none'] as const) {
        const out = path.join(tmp, `diff.${compression}`);
        const r = await layersClient.diff('act', out, compression);
        assert.ok(r.entries > 0);
        const u = await layersClient.unpack({ name: `rt-${compression}`, parent: top, layerPath: out, diffId: r.diffId });
        assert.equal(u.diffId, r.diffId);
        const am = await mountTemp(await d.client.mounts('act'), tmp, 'act2-');
        let actTree;
        try {
          actTree = snapshotTree(am.dir);
        } finally {
          await am.release();
        }
        assertTreesEqual(await viewTree(`rt-${compression}`), actTree, `${driver} round trip (${compression})`);
      }
      // snapctl diff to stdout gives the same uncompressed layer.
      const res = await run(['diff', 'act', '-o', path.join(tmp, 'cli.tar')]);
      assert.equal(res.code, 0, res.out);
      assert.equal(fs.readFileSync(path.join(tmp, 'cli.tar')).equals(fs.readFileSync(path.join(tmp, 'diff.none'))), true);
    });
  });
}
