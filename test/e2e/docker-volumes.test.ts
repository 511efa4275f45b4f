/**
 * End to end with a real dockerd: strata's volume plugin serving `docker volume create -d <plugin> -o size=64M`,
 * containers writing and reading, the size limit enforced inside the container, strata restarted while a
 * container uses the volume, removal refused while in use and space reclaimed afterwards.
 *
 * strata's root is a loopback btrfs served by the btrfs driver, so volumes are subvolumes with qgroup limits (this
 * kernel has no quota support for XFS/ext4 project quotas). The plugin socket gets a per-run name in
 * /run/docker/plugins so concurrent runs never answer for each other; the driver name is the socket's name.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VolumesApiClient } from '../../src/client/volumes';
import { backendMissing, cleanupStale, createBtrfs, run, type LoopBackend } from '../helpers/backends';
import { Daemon } from '../helpers/daemon';
import { Dockerd, dockerdMissing } from '../helpers/dockerd';

const MiB = 1024 * 1024;
const PLUGIN = `strata-e2e-${process.pid}`;
const PLUGIN_SOCKET = `/run/docker/plugins/${PLUGIN}.sock`;
const IMAGE = `strata-e2e-busybox:${process.pid}`;

async function free(mnt: string): Promise<number> {
  const st = await fs.promises.statfs(mnt);
  return st.bavail * st.bsize;
}

describe('docker volumes through strata (real dockerd)', () => {
  let skip: string | undefined;
  let be: LoopBackend | undefined;
  let strata: Daemon | undefined;
  let docker: Dockerd | undefined;
  let volumes: VolumesApiClient | undefined;

  before(async () => {
    skip = dockerdMissing() ?? (await backendMissing('btrfs'));
    if (skip) return;
    await cleanupStale();
    be = await createBtrfs({ sizeMiB: 1024 });
    strata = await Daemon.start({ driver: 'btrfs', root: path.join(be.mountpoint, 'root'), extraArgs: ['--plugin-socket', PLUGIN_SOCKET] });
    volumes = new VolumesApiClient(strata.address);
    docker = await Dockerd.start();
    await docker.importBusybox(IMAGE);
  });

  after(async () => {
    volumes?.close();
    await docker?.stop().catch((e: Error) => console.error(`dockerd teardown: ${e.message}`));
    await strata?.dispose().catch((e: Error) => console.error(`strata teardown: ${e.message}`));
    fs.rmSync(PLUGIN_SOCKET, { force: true });
    await be?.cleanup();
  });

  it('serves a size-limited volume to containers, survives a strata restart, and is removed only when unused', async (t) => {
    if (skip || !docker || !strata || !volumes || !be) return t.skip(skip);
    const d = docker;
    try {
      await d.ok(['volume', 'create', '-d', PLUGIN, '-o', 'size=64M', '-o', 'label.app=e2e', 'v1']);
      const v = await volumes.inspect('v1');
      assert.equal(v.sizeLimit, 64 * MiB);
      assert.equal(v.backend, 'btrfs');

      // ls and inspect show the plugin's volume with its mountpoint inside strata's root.
      const ls = await d.ok(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}']);
      assert.match(ls, new RegExp(`^${PLUGIN} v1$`, 'm'));
      const [inspected] = JSON.parse(await d.ok(['volume', 'inspect', 'v1'])) as Array<{ Driver: string; Mountpoint: string; Status: Record<string, unknown> }>;
      assert.equal(inspected!.Driver, PLUGIN);
      assert.equal(inspected!.Mountpoint, v.path);
      assert.equal(inspected!.Status.sizeLimit, 64 * MiB);

      // One container writes, a second reads.
      await d.ok(['run', '--rm', '--network', 'none', '-v', 'v1:/data', IMAGE, 'sh', '-c', 'echo persisted > /data/hello && sync']);
      assert.equal((await d.ok(['run', '--rm', '--network', 'none', '-v', 'v1:/data', IMAGE, 'cat', '/data/hello'])).trim(), 'persisted');
      assert.deepEqual((await volumes.inspect('v1')).refs, {}, 'both containers are gone: no references left');

      // Writing past 64M fails inside the container.
      const big = await d.docker(['run', '--rm', '--network', 'none', '-v', 'v1:/data', IMAGE, 'dd', 'if=/dev/zero', 'of=/data/big', 'bs=1M', 'count=100', 'conv=fsync']);
      assert.notEqual(big.code, 0, `dd of 100 MiB into a 64 MiB volume must fail: ${big.stderr}`);
      assert.match(big.stderr, /quota|space/i);
      const used = await volumes.usage('v1');
      assert.ok(used.size <= 65 * MiB && used.size >= 32 * MiB, `usage ${JSON.stringify(used)}`);
      // Make room again, keeping 40 MiB so the removal below has space to give back.
      await d.ok(['run', '--rm', '--network', 'none', '-v', 'v1:/data', IMAGE, 'sh', '-c', 'rm /data/big && dd if=/dev/zero of=/data/keep bs=1M count=40 conv=fsync 2>/dev/null']);

      // A long-running container holds it; strata restarts underneath; nothing changes.
      await d.ok(['run', '-d', '--name', 'holder', '--network', 'none', '-v', 'v1:/data', IMAGE, 'sleep', '600']);
      const refsBefore = (await volumes.inspect('v1')).refs;
      assert.equal(Object.keys(refsBefore).length, 1, JSON.stringify(refsBefore));
      volumes.close();
      await strata.restart();
      volumes = new VolumesApiClient(strata.address);
      const after = await volumes.inspect('v1');
      assert.deepEqual(after.refs, refsBefore, 'references survive the restart');
      assert.equal(after.path, v.path);
      assert.equal((await d.ok(['exec', 'holder', 'cat', '/data/hello'])).trim(), 'persisted');
      await d.ok(['exec', 'holder', 'sh', '-c', 'echo again > /data/after-restart']);

      // In use: docker refuses, and strata refuses too when asked directly.
      const rmBusy = await d.docker(['volume', 'rm', 'v1']);
      assert.notEqual(rmBusy.code, 0);
      assert.match(rmBusy.stderr, /in use/);
      await assert.rejects(volumes.remove('v1'), /in use/);
      assert.ok(fs.existsSync(path.join(v.path, 'after-restart')));

      // Once the container is gone the volume goes, and its space comes back.
      await d.ok(['rm', '-f', 'holder']);
      assert.deepEqual((await volumes.inspect('v1')).refs, {});
      const held = await volumes.usage('v1');
      assert.ok(held.size >= 32 * MiB, `the volume holds its data before removal: ${JSON.stringify(held)}`);
      await run('btrfs', ['filesystem', 'sync', be.mountpoint]);
      const freeBefore = await free(be.mountpoint);
      await d.ok(['volume', 'rm', 'v1']);
      assert.equal(fs.existsSync(v.path), false);
      await assert.rejects(volumes.inspect('v1'), /not found/);
      assert.doesNotMatch(await d.ok(['volume', 'ls', '-q']), /^v1$/m);
      // btrfs frees a deleted subvolume's extents in the background after the deleting transaction commits: commit,
      // wait for the cleaner, commit its work, and allow statfs a few seconds to catch up.
      let gained = 0;
      for (let i = 0; i < 20 && gained < 32 * MiB; i++) {
        await run('btrfs', ['filesystem', 'sync', be.mountpoint]);
        await run('btrfs', ['subvolume', 'sync', be.mountpoint]);
        await run('btrfs', ['filesystem', 'sync', be.mountpoint]);
        gained = (await free(be.mountpoint)) - freeBefore;
        if (gained < 32 * MiB) await new Promise((r) => setTimeout(r, 500));
      }
      assert.ok(gained >= 32 * MiB, `space reclaimed: ${gained / MiB} MiB`);
    } catch (e) {
      console.error(`--- strata log\n${strata.tail(60)}\n--- dockerd log\n${d.logs().slice(-4000)}`);
      throw e;
    }
  });
});
