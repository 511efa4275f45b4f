/**
 * Correctness against peers, same layers, compared tree to tree (types, modes, owners, xattrs, contents, link
 * targets, hardlink groups):
 *  - GNU tar (--xattrs --same-owner) for plain layers: the fixture's first layer and a tar GNU tar itself made
 *    of real system files;
 *  - containerd 1.6 (`ctr image import` on its overlayfs snapshotter, `ctr image mount`) for the whole
 *    three-layer image with whiteouts, against strata's delete form and its overlay form (uppers stacked by
 *    a real overlay mount).
 */
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MS, native } from '../../native/index';
import { applyLayer } from '../../src/unpack/engine';
import { Containerd, findContainerd } from '../helpers/containerd';
import { assertTreesEqual, snapshotTree } from '../helpers/tree';
import { sampleLayers, tarOfDir, writeOciLayout } from './fixture';

const isRoot = process.geteuid?.() === 0;

function gnuTar(args: string[]): void {
  execFileSync('tar', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

describe('peer: GNU tar', { skip: isRoot ? false : 'needs root' }, () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-peer-tar-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const compare = async (layer: string, what: string): Promise<void> => {
    const mine = fs.mkdtempSync(path.join(tmp, 'strata-'));
    const theirs = fs.mkdtempSync(path.join(tmp, 'tar-'));
    await applyLayer({ layer, root: mine, whiteouts: 'delete', sync: 'none' });
    gnuTar(['--xattrs', '--xattrs-include=*', '--same-owner', '--same-permissions', '-xf', layer, '-C', theirs]);
    assertTreesEqual(snapshotTree(mine), snapshotTree(theirs), what);
  };

  test('the fixture base layer (hardlinks, setuid, caps, user xattrs, devices, FIFO, symlinks)', async () => {
    const f = path.join(tmp, 'l1.tar');
    fs.writeFileSync(f, sampleLayers()[0]!.tar);
    await compare(f, 'fixture layer 1 vs GNU tar');
  });

  test('a layer GNU tar made of real files (/usr/share/doc, /usr/bin samples), gzip and zstd', async () => {
    const src = path.join(tmp, 'src');
    fs.mkdirSync(src);
    fs.cpSync('/usr/share/doc', path.join(src, 'doc'), { recursive: true, verbatimSymlinks: true });
    fs.mkdirSync(path.join(src, 'bin'));
    for (const b of ['tar', 'ls', 'cp', 'env']) fs.copyFileSync(`/usr/bin/${b}`, path.join(src, 'bin', b));
    fs.chmodSync(path.join(src, 'bin', 'env'), 0o4755);
    fs.linkSync(path.join(src, 'bin', 'ls'), path.join(src, 'bin', 'dir'));
    fs.symlinkSync('../bin/tar', path.join(src, 'doc', 'tar-link'));
    native().lsetxattr(path.join(src, 'bin', 'cp'), 'user.origin', Buffer.from('peer'), 0);
    const t = path.join(tmp, 'real.tar');
    gnuTar(['--xattrs', '--xattrs-include=*', '-cf', t, '-C', src, '.']);
    execFileSync('gzip', ['-k', t]);
    execFileSync('zstd', ['-q', '-k', t]);
    await compare(t, 'real files vs GNU tar (plain)');
    await compare(`${t}.gz`, 'real files vs GNU tar (gzip)');
    await compare(`${t}.zst`, 'real files vs GNU tar (zstd)');
  });
});

const bins = findContainerd('1.6');

describe('peer: containerd 1.6 overlayfs', { skip: !isRoot ? 'needs root' : typeof bins === 'string' ? bins : false }, () => {
  let tmp: string;
  let c: Containerd | undefined;
  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-peer-ctr-'));
    // The proxy plugin entry names a socket nobody serves; this test only uses the built-in overlayfs.
    c = await Containerd.start({ bins: bins as Exclude<typeof bins, string>, dir: tmp, strataAddress: path.join(tmp, 'none.sock') });
  });
  after(async () => {
    await c?.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('the three-layer image: strata delete form and overlay form equal containerd', async () => {
    const ctr = c as Containerd;
    const layers = sampleLayers('peer', false);
    const layout = path.join(tmp, 'oci');
    writeOciLayout(layout, layers, 'docker.io/strata/peer:latest');
    const archive = path.join(tmp, 'image.tar');
    fs.writeFileSync(archive, tarOfDir(layout));
    await ctr.ctrOk(['image', 'import', '--snapshotter', 'overlayfs', archive], { namespace: 'peer', timeoutMs: 300_000 });
    const target = path.join(tmp, 'ctr-mnt');
    fs.mkdirSync(target);
    await ctr.ctrOk(['image', 'mount', '--snapshotter', 'overlayfs', 'docker.io/strata/peer:latest', target], { namespace: 'peer' });
    let theirs;
    try {
      theirs = snapshotTree(target);
    } finally {
      await ctr.ctr(['image', 'unmount', '--rm', target], { namespace: 'peer' });
    }

    // Delete form: every layer into one directory.
    const plain = path.join(tmp, 'plain');
    fs.mkdirSync(plain, { mode: 0o755 });
    const uppers: string[] = [];
    for (const [i, l] of layers.entries()) {
      const f = path.join(tmp, `layer${i}`);
      fs.writeFileSync(f, l.blob);
      await applyLayer({ layer: f, root: plain, whiteouts: 'delete', sync: 'none', diffId: l.diffId });
      // Overlay form: one upper per layer, the earlier ones as lowers.
      const u = path.join(tmp, `upper${i}`);
      fs.mkdirSync(u, { mode: 0o755 });
      await applyLayer({ layer: f, root: u, whiteouts: 'overlay', lowerDirs: [...uppers].reverse(), sync: 'none', diffId: l.diffId });
      uppers.push(u);
    }
    assertTreesEqual(snapshotTree(plain), theirs, 'strata (delete form) vs containerd');

    const merged = path.join(tmp, 'merged');
    fs.mkdirSync(merged);
    native().mount('overlay', merged, 'overlay', MS.RDONLY, `lowerdir=${[...uppers].reverse().join(':')}`);
    try {
      assertTreesEqual(snapshotTree(merged), theirs, 'strata (overlay form) vs containerd');
    } finally {
      native().umount2(merged, 0);
    }
    assert.ok(theirs.size > 20, `containerd showed only ${theirs.size} paths`);
  });
});
