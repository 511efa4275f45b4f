/**
 * Reading images for `snapctl import`: an OCI image layout directory, an OCI archive (that layout in a tar), or
 * a `docker save` tarball (manifest.json; Docker 25+ writes OCI blobs inside it too). The result names each
 * layer blob as a host path plus a byte range, so the daemon applies members of an archive in place, without
 * extracting them first. Only metadata (JSON documents) is read here.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UnpackError } from './errors';

export interface LayerRef {
  /** The file holding the blob, and the blob's byte range in it. */
  file: string;
  offset: number;
  length: number;
  diffId: string;
  chainId: string;
  mediaType: string;
}

export interface ImageLayers {
  format: 'oci-layout' | 'oci-archive' | 'docker-save';
  name: string;
  layers: LayerRef[];
}

/** chainID(L0) = diffID(L0); chainID(Ln) = sha256(chainID(Ln-1) + " " + diffID(Ln)) (OCI image spec). */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : `sha256:${createHash('sha256').update(`${prev} ${d}`).digest('hex')}`);
  }
  return out;
}

interface Member {
  offset: number;
  size: number;
}

/** A plain tar's members (name → data offset and size), read header by header, skipping the data. */
export function indexTar(file: string): Map<string, Member> {
  const fd = fs.openSync(file, 'r');
  const out = new Map<string, Member>();
  try {
    const h = Buffer.alloc(512);
    let pos = 0;
    let longName: string | null = null;
    let paxPath: string | null = null;
    let paxSize: number | null = null;
    for (;;) {
      if (fs.readSync(fd, h, 0, 512, pos) < 512) break;
      if (h.every((b) => b === 0)) break;
      const str = (o: number, n: number): string => {
        const end = h.indexOf(0, o);
        return h.toString('utf8', o, end < 0 || end > o + n ? o + n : end);
      };
      const num = (o: number, n: number): number => {
        if (h[o] & 0x80) {
          let v = 0;
          for (let i = 1; i < n; i++) v = v * 256 + h[o + i];
          return v;
        }
        return parseInt(str(o, n).trim() || '0', 8);
      };
      const type = String.fromCharCode(h[156]);
      let size = num(124, 12);
      const dataAt = pos + 512;
      if (type === 'L' || type === 'x') {
        const body = Buffer.alloc(size);
        fs.readSync(fd, body, 0, size, dataAt);
        if (type === 'L') longName = body.toString('utf8').replace(/\0+$/, '');
        else {
          for (const rec of body.toString('utf8').split('\n')) {
            const m = /^\d+ ([^=]+)=(.*)$/s.exec(rec);
            if (m?.[1] === 'path') paxPath = m[2]!;
            if (m?.[1] === 'size') paxSize = Number(m[2]);
          }
        }
      } else {
        const prefix = h.toString('latin1', 257, 263) === 'ustar\0' ? str(345, 155) : '';
        const name = paxPath ?? longName ?? (prefix ? `${prefix}/${str(0, 100)}` : str(0, 100));
        if (paxSize !== null) size = paxSize;
        out.set(name.replace(/^\.\//, ''), { offset: dataAt, size });
        longName = paxPath = null;
        paxSize = null;
      }
      pos = dataAt + Math.ceil(size / 512) * 512;
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

/** Where the image's documents and blobs are: a directory or an archive's members. */
interface Source {
  readJson(name: string): unknown;
  has(name: string): boolean;
  blob(name: string): { file: string; offset: number; length: number };
}

function dirSource(dir: string): Source {
  return {
    readJson: (n) => JSON.parse(fs.readFileSync(path.join(dir, n), 'utf8')),
    has: (n) => fs.existsSync(path.join(dir, n)),
    blob: (n) => ({ file: path.join(dir, n), offset: 0, length: fs.statSync(path.join(dir, n)).size }),
  };
}

function archiveSource(file: string): Source {
  const idx = indexTar(file);
  const get = (n: string): Member => {
    const m = idx.get(n);
    if (!m) throw new UnpackError('corrupt', `"${n}" is not in ${file}`);
    return m;
  };
  return {
    readJson: (n) => {
      const m = get(n);
      if (m.size > 64 << 20) throw new UnpackError('limit', `${n} is larger than 64 MiB`);
      const b = Buffer.alloc(m.size);
      const fd = fs.openSync(file, 'r');
      try {
        fs.readSync(fd, b, 0, m.size, m.offset);
      } finally {
        fs.closeSync(fd);
      }
      return JSON.parse(b.toString('utf8'));
    },
    has: (n) => idx.has(n),
    blob: (n) => {
      const m = get(n);
      return { file, offset: m.offset, length: m.size };
    },
  };
}

const blobPath = (digest: string): string => {
  const m = /^(sha256|sha512):([0-9a-f]+)$/.exec(digest);
  if (!m) throw new UnpackError('corrupt', `bad digest "${digest}"`);
  return `blobs/${m[1]}/${m[2]}`;
};

interface Descriptor {
  mediaType?: string;
  digest: string;
  size?: number;
  platform?: { os?: string; architecture?: string };
}

const INDEX_TYPES = ['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json'];

function hostArch(): string {
  return ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x' } as Record<string, string>)[process.arch] ?? process.arch;
}

/** index.json → (nested indexes →) the manifest for this platform (or the only one). */
function ociManifest(src: Source): { manifest: { config: Descriptor; layers: Descriptor[] }; name: string } {
  let index = src.readJson('index.json') as { manifests?: Descriptor[] & Array<{ annotations?: Record<string, string> }> };
  let name = '';
  for (let depth = 0; depth < 4; depth++) {
    const ms = index.manifests ?? [];
    if (ms.length === 0) throw new UnpackError('corrupt', 'the image index lists no manifests');
    const pick = ms.find((m) => !m.platform || (m.platform.os === 'linux' && m.platform.architecture === hostArch())) ?? ms[0]!;
    name ||= (pick as { annotations?: Record<string, string> }).annotations?.['org.opencontainers.image.ref.name'] ?? '';
    const doc = src.readJson(blobPath(pick.digest)) as { mediaType?: string; manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] };
    if (doc.manifests || INDEX_TYPES.includes(doc.mediaType ?? pick.mediaType ?? '')) {
      index = doc as typeof index;
      continue;
    }
    if (!doc.config || !doc.layers) throw new UnpackError('corrupt', `manifest ${pick.digest} has no config or layers`);
    return { manifest: { config: doc.config, layers: doc.layers }, name };
  }
  throw new UnpackError('corrupt', 'image indexes nested too deep');
}

function diffIdsOf(config: unknown): string[] {
  const ids = (config as { rootfs?: { diff_ids?: unknown } }).rootfs?.diff_ids;
  if (!Array.isArray(ids) || ids.some((d) => typeof d !== 'string')) throw new UnpackError('corrupt', 'the image config has no rootfs.diff_ids');
  return ids as string[];
}

export function readImage(image: string): ImageLayers {
  const st = fs.statSync(image);
  const src = st.isDirectory() ? dirSource(image) : archiveSource(image);
  if (src.has('manifest.json')) {
    // docker save: manifest.json lists config and layer members (legacy layer dirs or OCI blobs).
    const list = src.readJson('manifest.json') as Array<{ Config: string; RepoTags?: string[]; Layers: string[] }>;
    if (!Array.isArray(list) || list.length === 0) throw new UnpackError('corrupt', 'manifest.json lists no images');
    const m = list[0]!;
    const diffIds = diffIdsOf(src.readJson(m.Config));
    if (diffIds.length !== m.Layers.length) throw new UnpackError('corrupt', 'manifest.json and the config disagree on the layer count');
    const chains = chainIds(diffIds);
    return {
      format: 'docker-save',
      name: m.RepoTags?.[0] ?? '',
      layers: m.Layers.map((l, i) => ({ ...src.blob(l), diffId: diffIds[i]!, chainId: chains[i]!, mediaType: 'application/vnd.docker.image.rootfs.diff.tar' })),
    };
  }
  if (!src.has('oci-layout') && !src.has('index.json')) {
    throw new UnpackError('unsupported', `${image} is neither an OCI image layout, an OCI archive nor a docker save tarball`);
  }
  const { manifest, name } = ociManifest(src);
  const diffIds = diffIdsOf(src.readJson(blobPath(manifest.config.digest)));
  if (diffIds.length !== manifest.layers.length) throw new UnpackError('corrupt', 'the manifest and the config disagree on the layer count');
  const chains = chainIds(diffIds);
  return {
    format: st.isDirectory() ? 'oci-layout' : 'oci-archive',
    name,
    layers: manifest.layers.map((l, i) => ({ ...src.blob(blobPath(l.digest)), diffId: diffIds[i]!, chainId: chains[i]!, mediaType: l.mediaType ?? '' })),
  };
}
