/**
 * A promise-based client of containerd's Snapshots API on strata's socket, for snapctl, tests and benchmarks.
 * Speaks the same wire protocol containerd does, so what passes here passes for containerd.
 */
import * as grpc from '@grpc/grpc-js';
import {
  Kind as PbKind,
  SnapshotsClient,
  type Info as PbInfo,
} from '../gen/containerd/services/snapshots/v1/snapshots';
import type { Info, Kind, Labels, Mount } from '../core/types';

export { DEFAULT_ADDRESS, resolveAddress } from './address';

export function grpcTarget(address: string): string {
  return address.startsWith('unix:') ? address : `unix:${address}`;
}

const KIND_FROM_PB: Record<number, Kind> = { [PbKind.VIEW]: 'view', [PbKind.ACTIVE]: 'active', [PbKind.COMMITTED]: 'committed' };

export function infoFromPb(pb: PbInfo): Info {
  return {
    name: pb.name,
    parent: pb.parent,
    kind: KIND_FROM_PB[pb.kind] ?? 'active',
    created: pb.createdAt ?? new Date(0),
    updated: pb.updatedAt ?? new Date(0),
    labels: pb.labels ?? {},
  };
}

type Callback<R> = (err: grpc.ServiceError | null, res: R) => void;

function call<Req, Res>(fn: (req: Req, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: Callback<Res>) => unknown, req: Req, timeoutMs: number): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn(req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

export class SnapshotsApiClient {
  readonly raw: SnapshotsClient;
  constructor(
    readonly address: string,
    private readonly timeoutMs = 120_000,
    /** containerd sends the snapshotter name; strata ignores it but accepts any. */
    private readonly snapshotter = 'strata',
  ) {
    this.raw = new SnapshotsClient(grpcTarget(address), grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 16 << 20,
      'grpc.enable_channelz': 0,
    });
  }

  /** Resolves once the socket answers; rejects with a clear message when the daemon is not running. */
  waitReady(timeoutMs = 5000): Promise<void> {
    return new Promise((resolve, reject) => {
      this.raw.waitForReady(Date.now() + timeoutMs, (err) =>
        err ? reject(new Error(`cannot reach strata at ${this.address}: is the daemon running? (${err.message})`)) : resolve(),
      );
    });
  }

  async prepare(key: string, parent = '', labels: Labels = {}): Promise<Mount[]> {
    const r = await call(this.raw.prepare.bind(this.raw), { snapshotter: this.snapshotter, key, parent, labels }, this.timeoutMs);
    return r.mounts.map(({ type, source, options }) => ({ type, source, options }));
  }

  async view(key: string, parent = '', labels: Labels = {}): Promise<Mount[]> {
    const r = await call(this.raw.view.bind(this.raw), { snapshotter: this.snapshotter, key, parent, labels }, this.timeoutMs);
    return r.mounts.map(({ type, source, options }) => ({ type, source, options }));
  }

  async mounts(key: string): Promise<Mount[]> {
    const r = await call(this.raw.mounts.bind(this.raw), { snapshotter: this.snapshotter, key }, this.timeoutMs);
    return r.mounts.map(({ type, source, options }) => ({ type, source, options }));
  }

  async commit(name: string, key: string, labels: Labels = {}, parent = ''): Promise<void> {
    await call(this.raw.commit.bind(this.raw), { snapshotter: this.snapshotter, name, key, labels, parent }, this.timeoutMs);
  }

  async remove(key: string): Promise<void> {
    await call(this.raw.remove.bind(this.raw), { snapshotter: this.snapshotter, key }, this.timeoutMs);
  }

  async stat(key: string): Promise<Info> {
    const r = await call(this.raw.stat.bind(this.raw), { snapshotter: this.snapshotter, key }, this.timeoutMs);
    if (!r.info) throw new Error('Stat returned no info');
    return infoFromPb(r.info);
  }

  async update(name: string, labels: Labels, fieldPaths: string[] = []): Promise<Info> {
    const info: PbInfo = { name, parent: '', kind: PbKind.UNKNOWN, createdAt: undefined, updatedAt: undefined, labels };
    const r = await call(
      this.raw.update.bind(this.raw),
      { snapshotter: this.snapshotter, info, updateMask: fieldPaths.length ? fieldPaths : undefined },
      this.timeoutMs,
    );
    if (!r.info) throw new Error('Update returned no info');
    return infoFromPb(r.info);
  }

  /** Raw Update, for tests that send kinds/parents that must be refused. */
  async updateRaw(info: PbInfo, fieldPaths: string[]): Promise<Info> {
    const r = await call(this.raw.update.bind(this.raw), { snapshotter: this.snapshotter, info, updateMask: fieldPaths }, this.timeoutMs);
    if (!r.info) throw new Error('Update returned no info');
    return infoFromPb(r.info);
  }

  list(filters: string[] = []): Promise<Info[]> {
    return new Promise((resolve, reject) => {
      const out: Info[] = [];
      const stream = this.raw.list({ snapshotter: this.snapshotter, filters }, { deadline: Date.now() + this.timeoutMs });
      stream.on('data', (batch: { info: PbInfo[] }) => {
        for (const i of batch.info) out.push(infoFromPb(i));
      });
      stream.on('error', reject);
      stream.on('end', () => resolve(out));
    });
  }

  async usage(key: string): Promise<{ size: number; inodes: number }> {
    const r = await call(this.raw.usage.bind(this.raw), { snapshotter: this.snapshotter, key }, this.timeoutMs);
    return { size: r.size, inodes: r.inodes };
  }

  async cleanup(): Promise<void> {
    await call(this.raw.cleanup.bind(this.raw), { snapshotter: this.snapshotter }, this.timeoutMs);
  }

  close(): void {
    this.raw.close();
  }
}

/** The gRPC status code name of an error from this client ('NOT_FOUND'...), for tests and exit codes. */
export function grpcCodeName(e: unknown): string | undefined {
  const code = (e as { code?: unknown }).code;
  return typeof code === 'number' ? grpc.status[code] : undefined;
}
