/**
 * The benchmark's inputs: three layer tarballs made from this machine's files (plain, gzip, zstd), built once
 * under the work directory on the host filesystem and reused by later runs, and the OCI archive of them that
 * containerd and `snapctl import` read.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export type Comp = 'gzip' | 'zstd';
export const COMPS: readonly Comp[] = ['gzip', 'zstd'];
export const EXT: Record<Comp, string> = { gzip: '.gz', zstd: '.zst' };

export interface Layer {
  /** The uncompressed tarball; `tar + EXT[comp]` is the compressed one. */
  tar: string;
  bytes: number;
  entries: number;
  /** sha256 of the uncompressed tarball. */
  diffId: string;
}

/** The full set: a base of docs, headers, Python/Perl libraries; /usr/sbin; this project's node_modules (~690 MB). */
const FULL_SOURCES: string[][] = [
  ['usr/share/man', 'usr/share/zoneinfo', 'usr/share/i18n', 'usr/share/perl', 'usr/share/perl5', 'usr/include', 'usr/lib/python3', 'usr/lib/python3.11'],
  ['usr/sbin'],
  [path.relative('/', path.resolve(__dirname, '..', '..', '..', 'node_modules'))],
];

/** STRATA_BENCH_SMALL=1: ~27 MB of small trees, to check the harness end to end, not to measure. */
const SMALL_SOURCES: string[][] = [['usr/share/zoneinfo'], ['usr/share/perl5'], ['usr/share/i18n']];

export function sh(file: string, args: string[]): string {
  return execFileSync(file, args, { encoding: 'utf8', maxBuffer: 256 << 20 });
}

function sha256File(file: string): string {
  return sh('sha256sum', [file]).split(' ')[0]!;
}

export function buildLayers(work: string, small: boolean): Layer[] {
  const dir = path.join(work, small ? 'layers-small' : 'layers');
  fs.mkdirSync(dir, { recursive: true });
  return (small ? SMALL_SOURCES : FULL_SOURCES).map((srcs, i) => {
    const tar = path.join(dir, `l${i}.tar`);
    const existing = srcs.filter((s) => fs.existsSync(path.join('/', s)));
    if (!fs.existsSync(`${tar}.zst`)) {
      process.stderr.write(`building layer ${i} from ${existing.join(' ')}\n`);
      sh('tar', ['--xattrs', '-cf', tar, '-C', '/', ...existing]);
      sh('gzip', ['-k', '-6', '-f', tar]);
      sh('zstd', ['-q', '-3', '-f', '-k', tar]);
    }
    const entries = sh('tar', ['-tf', tar]).split('\n').filter(Boolean).length;
    return { tar, bytes: fs.statSync(tar).size, entries, diffId: `sha256:${sha256File(tar)}` };
  });
}

/** The chain IDs `snapctl import` names its snapshots by (OCI image spec). */
export function chainIds(layers: readonly Layer[]): string[] {
  const out: string[] = [];
  for (const l of layers) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? l.diffId : `sha256:${createHash('sha256').update(`${prev} ${l.diffId}`).digest('hex')}`);
  }
  return out;
}

export function imageName(comp: Comp): string {
  return `docker.io/strata/bench:${comp}`;
}

/** An OCI archive (tar of an image layout) holding the layers in one compression. */
export function writeOciArchive(work: string, layers: readonly Layer[], comp: Comp, out: string): void {
  const dir = path.join(work, `oci-${comp}`);
  fs.rmSync(dir, { recursive: true, force: true });
  const blobs = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const put = (file: string): { digest: string; size: number } => {
    const hex = sha256File(file);
    fs.copyFileSync(file, path.join(blobs, hex));
    return { digest: `sha256:${hex}`, size: fs.statSync(file).size };
  };
  const putBuf = (b: Buffer): { digest: string; size: number } => {
    const f = path.join(dir, 'tmp');
    fs.writeFileSync(f, b);
    const r = put(f);
    fs.rmSync(f);
    return r;
  };
  const config = putBuf(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) } })));
  const mt = comp === 'gzip' ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar+zstd';
  const manifest = putBuf(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: layers.map((l) => ({ mediaType: mt, ...put(l.tar + EXT[comp]) })),
      }),
    ),
  );
  fs.writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  fs.writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'io.containerd.image.name': imageName(comp) } }] }),
  );
  sh('tar', ['-cf', out, '-C', dir, '.']);
  fs.rmSync(dir, { recursive: true, force: true });
}
