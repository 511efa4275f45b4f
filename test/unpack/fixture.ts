/**
 * A three-layer image exercising what real images hold (hardlinks, symlinks, setuid, xattrs, devices, FIFOs,
 * whiteouts, opaque dirs, type replacements, implicit parents), in gzip, zstd and plain layers, written as an
 * OCI layout directory, an OCI archive and a docker save tarball.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chainIds } from '../../src/unpack/image';
import { TarBuilder, gzip, sha256, zstd } from './builder';

export interface BuiltLayer {
  tar: Buffer;
  blob: Buffer;
  mediaType: string;
  diffId: string;
}

function pseudoRandom(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/**
 * full = false leaves out two constructs containerd 1.6's overlay apply gets wrong, for the peer test:
 *  - layer 2 hardlinks a file only layer 1 has: strata copies it up (overlay form) or links it (delete form);
 *    containerd fails ("link ...: no such file or directory");
 *  - layer 3 whites out tmp/ and recreates it: strata makes the new dir opaque (the OCI spec: the whiteout
 *    removes the lower tmp/), containerd lets the lower tmp/old show through. The peer variant uses an opaque
 *    marker instead, which both read the same way.
 */
export function sampleLayers(variant = '', full = true): BuiltLayer[] {
  const t1 = new TarBuilder()
    .dir('bin/')
    .dir('etc/')
    .file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n')
    .file('etc/group', 'root:x:0:\n')
    .file('etc/hosts', '127.0.0.1 localhost\n')
    .dir('usr/', { mtimeSec: 1700000000 })
    .dir('usr/bin/')
    .file('usr/bin/tool', pseudoRandom(3 << 20, 7), { mode: 0o755, mtimeSec: 1600000000, mtimeNsec: 5 })
    .hardlink('usr/bin/tool-link', 'usr/bin/tool', { mode: 0o755 })
    .file('usr/bin/su', 'su', { mode: 0o4755 })
    .entry({ name: 'usr/bin/ping', type: 'file', mode: 0o755, xattrs: { 'security.capability': Buffer.from('0100000200200000000000000000000000000000', 'hex') } }, 'ping')
    .entry({ name: 'usr/bin/noted', type: 'file', mode: 0o644, xattrs: { 'user.note': 'hello' } }, 'noted')
    .symlink('usr/bin/sh', 'tool')
    .symlink('lib', 'usr/lib')
    .dir('usr/share/')
    .dir('usr/share/doc/')
    .file('usr/share/doc/readme', 'doc')
    .dir('tmp/', { mode: 0o1777 })
    .file('tmp/old', 'old')
    .dir('var/')
    .file('var/keep', 'k')
    .node('var/pipe', 'fifo', 0, 0, { mode: 0o600 })
    .dir('dev/')
    .node('dev/null', 'chardev', 1, 3, { mode: 0o666 })
    .dir('home/', { mode: 0o755 })
    .dir('home/user/', { mode: 0o700, uid: 1000, gid: 1000 })
    .file('home/user/.profile', 'export A=1\n', { uid: 1000, gid: 1000, mode: 0o600 });
  for (let i = 0; i < 200; i++) t1.file(`usr/share/many/f${i}`, `file ${i}${variant}\n`);
  const l1 = t1.build();

  const t2 = new TarBuilder()
    .dir('etc/')
    .file('etc/.wh.group')
    .dir('etc/hosts/')
    .file('etc/hosts/x', 'now a dir');
  if (full) t2.hardlink('etc/passwd-link', 'etc/passwd');
  const l2 = t2
    .dir('var/')
    .file('var/.wh..wh..opq')
    .file('var/new', 'new')
    .file('usr/bin/tool', 'replaced', { mode: 0o755 })
    .file('usr/.wh.share')
    .build();

  const t3 = new TarBuilder();
  if (full) t3.file('.wh.tmp').dir('tmp/', { mode: 0o1777 });
  else t3.dir('tmp/', { mode: 0o1777 }).file('tmp/.wh..wh..opq');
  const l3 = t3
    .file('tmp/fresh', 'fresh')
    .file('usr/bin/sub/implicit', 'implicit parents')
    .symlink('etc/passwd-sym', '/etc/passwd')
    .build();

  return [
    { tar: l1, blob: gzip(l1), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', diffId: sha256(l1) },
    { tar: l2, blob: zstd(l2), mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', diffId: sha256(l2) },
    { tar: l3, blob: l3, mediaType: 'application/vnd.oci.image.layer.v1.tar', diffId: sha256(l3) },
  ];
}

function digest(b: Buffer): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}

/** An OCI image layout in `dir` (created). Returns the top chain ID. */
export function writeOciLayout(dir: string, layers: BuiltLayer[], name = 'docker.io/strata/unpack-test:latest'): string {
  const blobs = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const put = (b: Buffer): string => {
    const d = digest(b);
    fs.writeFileSync(path.join(blobs, d.slice(7)), b);
    return d;
  };
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: put(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: put(l.blob), size: l.blob.length })),
    }),
  );
  const md = put(manifest);
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: md, size: manifest.length, annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': 'latest' } }],
    }),
  );
  return chainIds(layers.map((l) => l.diffId)).at(-1)!;
}

/** A tar of a directory's files (regular files and dirs only, as image archives are). */
export function tarOfDir(dir: string): Buffer {
  const t = new TarBuilder();
  const walk = (rel: string): void => {
    for (const n of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const st = fs.statSync(path.join(dir, r));
      if (st.isDirectory()) {
        t.dir(`${r}/`);
        walk(r);
      } else t.file(r, fs.readFileSync(path.join(dir, r)));
    }
  };
  walk('');
  return t.build();
}

/** A docker save tarball: manifest.json, config, one tar per layer (the layers' blobs as written). */
export function dockerSave(layers: BuiltLayer[], tag = 'strata/unpack-test:save'): Buffer {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) } }));
  const cfgName = `${digest(config).slice(7)}.json`;
  const t = new TarBuilder().file(cfgName, config);
  const names: string[] = [];
  layers.forEach((l, i) => {
    const n = `layer${i}/layer.tar`;
    t.dir(`layer${i}/`).file(n, l.blob);
    names.push(n);
  });
  t.file('manifest.json', JSON.stringify([{ Config: cfgName, RepoTags: [tag], Layers: names }]));
  return t.build();
}
