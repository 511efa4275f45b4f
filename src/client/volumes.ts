/**
 * A promise client of strata.v1.Volumes for snapctl and tests. Plain typed objects (src/volumes/types.ts) out,
 * so callers never see protobuf shapes.
 */
import * as grpc from '@grpc/grpc-js';
import type { Labels } from '../core/types';
import { VolumesClient, type Volume as PbVolume } from '../gen/strata/v1/volumes';
import type { Volume, VolumeOrigin, VolumeUsage } from '../volumes/types';
import { grpcTarget } from './snapshots';

export function volumeFromPb(p: PbVolume): Volume {
  const v: Volume = {
    id: p.id,
    name: p.name,
    backend: p.backend as Volume['backend'],
    path: p.path,
    readonly: p.readonly,
    sizeLimit: p.sizeLimit,
    labels: p.labels ?? {},
    options: p.options ?? {},
    created: p.createdAt ?? new Date(0),
    state: (p.state || 'ready') as Volume['state'],
    refs: p.refs ?? {},
  };
  if (p.originKind) v.origin = { kind: p.originKind as VolumeOrigin, name: p.originName };
  return v;
}

type Unary<Req, Res> = (req: Req, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res: Res) => void) => unknown;

export class VolumesApiClient {
  readonly raw: VolumesClient;
  constructor(
    readonly address: string,
    private readonly timeoutMs = 600_000,
  ) {
    // The same channel options as the other clients, so grpc-js shares one connection.
    this.raw = new VolumesClient(grpcTarget(address), grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 16 << 20,
    });
  }

  private call<Req, Res>(fn: Unary<Req, Res>, req: Req): Promise<Res> {
    return new Promise((resolve, reject) => {
      fn.call(this.raw, req, new grpc.Metadata(), { deadline: Date.now() + this.timeoutMs }, (err, res) => (err ? reject(err) : resolve(res)));
    });
  }

  private static vol(r: { volume?: PbVolume | undefined }): Volume {
    if (!r.volume) throw new Error('the daemon answered without a volume');
    return volumeFromPb(r.volume);
  }

  async create(req: { name: string; sizeLimit?: number; labels?: Labels; snapshotOf?: string; cloneOf?: string }): Promise<Volume> {
    const r = await this.call(this.raw.create, {
      name: req.name,
      sizeLimit: req.sizeLimit ?? 0,
      labels: req.labels ?? {},
      snapshotOf: req.snapshotOf ?? '',
      cloneOf: req.cloneOf ?? '',
    });
    return VolumesApiClient.vol(r);
  }

  async inspect(name: string): Promise<Volume> {
    return VolumesApiClient.vol(await this.call(this.raw.inspect, { name }));
  }

  async list(labels: Labels = {}): Promise<Volume[]> {
    return (await this.call(this.raw.list, { labels })).volumes.map(volumeFromPb);
  }

  async snapshot(source: string, name: string, labels: Labels = {}): Promise<Volume> {
    return VolumesApiClient.vol(await this.call(this.raw.snapshot, { source, name, sizeLimit: 0, labels }));
  }

  async clone(source: string, name: string, sizeLimit = 0, labels: Labels = {}): Promise<Volume> {
    return VolumesApiClient.vol(await this.call(this.raw.clone, { source, name, sizeLimit, labels }));
  }

  async remove(name: string, force = false): Promise<void> {
    await this.call(this.raw.remove, { name, force });
  }

  async usage(name: string): Promise<VolumeUsage> {
    const r = await this.call(this.raw.usage, { name });
    return { size: r.size, inodes: r.inodes, limit: r.limit, method: r.method as VolumeUsage['method'] };
  }

  async mount(name: string, callerId: string): Promise<string> {
    return (await this.call(this.raw.mount, { name, callerId })).path;
  }

  async unmount(name: string, callerId: string): Promise<void> {
    await this.call(this.raw.unmount, { name, callerId });
  }

  close(): void {
    this.raw.close();
  }
}
