/**
 * A promise client of strata's own Admin service (proto/strata/v1/admin.proto): snapshot detail and daemon
 * status for snapctl, tests and benchmarks. Plain typed objects out, so callers never see protobuf shapes.
 */
import * as grpc from '@grpc/grpc-js';
import { AdminClient, type InfoResponse, type StatusResponse } from '../gen/strata/v1/admin';
import type { Kind, Labels, Mount } from '../core/types';
import { grpcTarget } from './snapshots';

export interface SnapshotDetail {
  name: string;
  id: number;
  kind: Kind;
  /** Committed ancestors, nearest first. */
  parents: { name: string; id: number }[];
  path: string;
  /** path holds only the layer's own changes (overlay form), not a whole tree. */
  pathHoldsChanges: boolean;
  usage?: { size: number; inodes: number; method: string };
  usageError?: string;
  /** Bytes; 0 = no limit. */
  sizeLimit: number;
  mounts: Mount[];
  labels: Labels;
  created: Date;
  updated: Date;
}

export interface DaemonStatus {
  driver: string;
  driverStatus: Record<string, string>;
  root: string;
  address: string;
  counts: { active: number; views: number; committed: number };
  pendingReclaims: number;
  version: string;
  pid: number;
  started: Date;
}

const KINDS: readonly string[] = ['view', 'active', 'committed'];

function detailFromPb(r: InfoResponse): SnapshotDetail {
  const d: SnapshotDetail = {
    name: r.name,
    id: r.id,
    kind: (KINDS.includes(r.kind) ? r.kind : 'active') as Kind,
    parents: r.parents.map((p) => ({ name: p.name, id: p.id })),
    path: r.path,
    pathHoldsChanges: r.pathHoldsChanges,
    sizeLimit: r.sizeLimit,
    mounts: r.mounts.map(({ type, source, options }) => ({ type, source, options })),
    labels: r.labels ?? {},
    created: r.createdAt ?? new Date(0),
    updated: r.updatedAt ?? new Date(0),
  };
  if (r.usage) d.usage = { size: r.usage.size, inodes: r.usage.inodes, method: r.usage.method };
  if (r.usageError) d.usageError = r.usageError;
  return d;
}

function statusFromPb(r: StatusResponse): DaemonStatus {
  return {
    driver: r.driver,
    driverStatus: r.driverStatus ?? {},
    root: r.root,
    address: r.address,
    counts: { active: r.active, views: r.views, committed: r.committed },
    pendingReclaims: r.pendingReclaims,
    version: r.version,
    pid: r.pid,
    started: r.startedAt ?? new Date(0),
  };
}

export class AdminApiClient {
  readonly raw: AdminClient;
  constructor(
    readonly address: string,
    private readonly timeoutMs = 120_000,
  ) {
    // The same channel options as SnapshotsApiClient, so grpc-js shares one connection between the two clients.
    this.raw = new AdminClient(grpcTarget(address), grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 16 << 20,
    });
  }

  info(key: string, opts: { skipUsage?: boolean } = {}): Promise<SnapshotDetail> {
    return new Promise((resolve, reject) => {
      this.raw.info({ key, skipUsage: opts.skipUsage ?? false }, new grpc.Metadata(), { deadline: Date.now() + this.timeoutMs }, (err, res) =>
        err ? reject(err) : resolve(detailFromPb(res)),
      );
    });
  }

  status(): Promise<DaemonStatus> {
    return new Promise((resolve, reject) => {
      this.raw.status({}, new grpc.Metadata(), { deadline: Date.now() + this.timeoutMs }, (err, res) =>
        err ? reject(err) : resolve(statusFromPb(res)),
      );
    });
  }

  close(): void {
    this.raw.close();
  }
}
